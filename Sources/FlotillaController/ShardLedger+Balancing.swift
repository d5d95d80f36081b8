import FlotillaCore

extension ShardLedger {
    /// The donor that stands for partitions whose owner was lost and that no live worker owns yet.
    static let orphanDonor = "(orphaned partitions)"

    /// Live running workers that report idle, own partitions with no record waiting on them, and
    /// were not just sent work. A worker idle with records waiting on its own partitions is waiting
    /// for a fetch, not for work: stealing for it only queues copies behind its own records (on a
    /// saturated broker that made a fifth of 2 000 shards `stolen`, measured at 20 workers).
    func idleWorkers(now: Int64, plan: TargetPlan) -> [String] {
        workers.values
            .filter { worker in
                guard !worker.lost, worker.idle, worker.state == .running, now >= worker.stealBlockedUntil,
                      let owned = plan.partitions[worker.id] else { return false }
                return owned.allSatisfy { (plan.pendingByPartition[$0] ?? 0) == 0 }
            }
            .map(\.id).sorted()
    }

    /// Live running workers that will run dry once their in-flight shards finish: nothing queued
    /// and no record waiting on their partitions. Stealing for them before they go idle saves the
    /// round trip (heartbeat, tick, delivery) during which they would sit idle.
    func hungryWorkers(now: Int64, plan: TargetPlan) -> [String] {
        workers.values
            .filter { worker in
                guard !worker.lost, !worker.idle, worker.state == .running, now >= worker.stealBlockedUntil,
                      !worker.inFlight.isEmpty, worker.queued.isEmpty, let owned = plan.partitions[worker.id] else { return false }
                return owned.allSatisfy { (plan.pendingByPartition[$0] ?? 0) == 0 }
            }
            .map(\.id).sorted()
    }

    /// Each busy worker's unstarted work in the order it would reach it: its local queue, then the
    /// records waiting on its partitions (by position in the partition). The tail comes last.
    func backlogs(plan: TargetPlan) -> [String: [String]] {
        var result: [String: [String]] = [:]
        for (id, queue) in plan.queuedBy {
            guard let worker = workers[id], !worker.inFlight.isEmpty else { continue }  // idle-ish: starts it now
            result[id] = queue.filter { shard in
                guard let entry = shards[shard], !entry.isFinished, entry.source != nil,
                      !entry.isExecuting(live: plan.live) else { return false }
                // The latest attempt went to another worker's partition (stolen or re-enqueued):
                // this worker's copy is stale and will be skipped, so there is nothing to steal.
                // Unless this worker took it (the warm start): then it runs it whoever owns the
                // partition, and a slow taker's queue is what the others must steal from (seen: a
                // 3x slower worker ran its taken shards 2.6 s after the others had gone idle).
                if let partition = entry.attempts[entry.latestAttempt]?.partition, let owner = plan.owner[partition] {
                    return owner == id || warmTakes[shard]?.worker == id
                }
                return true
            }
        }
        var waiting: [Int: [(offset: Int64, shard: String)]] = [:]
        for entry in shards.openEntries where isWaitingInKafka(entry, live: plan.live, queued: plan.queued, owner: plan.owner) && entry.source != nil {
            guard let info = entry.attempts[entry.latestAttempt], let partition = info.partition else { continue }
            waiting[partition, default: []].append((info.offset ?? info.publishedAt, entry.id))
        }
        var ranked: [String: [(rank: Int, partition: Int, shard: String)]] = [:]
        for (partition, records) in waiting {
            let donor: String
            if let owner = plan.owner[partition] {
                guard workers[owner]?.inFlight.isEmpty == false else { continue }
                donor = owner
            } else if orphanedPartitions.contains(partition) {
                donor = Self.orphanDonor
            } else {
                continue
            }
            for (rank, record) in records.sorted(by: { ($0.offset, $0.shard) < ($1.offset, $1.shard) }).enumerated() {
                ranked[donor, default: []].append((rank, partition, record.shard))
            }
        }
        for (donor, records) in ranked {
            result[donor, default: []] += records.sorted { ($0.rank, $0.partition) < ($1.rank, $1.partition) }.map(\.shard)
        }
        return result.filter { !$0.value.isEmpty }
    }

    /// Work stealing: each idle worker takes unstarted shards from the tail of the longest backlog
    /// into its partitions, as a new attempt (`stolen`). How many: the thief's share of that
    /// backlog by measured rates (thief and donor then finish together), at least
    /// `stealPerIdleWorker`; for orphaned partitions (no live owner), an even split between the
    /// idle workers.
    mutating func steal(now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        let idle = idleWorkers(now: now, plan: plan)
        let hungry = viewIsStale ? [] : hungryWorkers(now: now, plan: plan)
        guard !idle.isEmpty || !hungry.isEmpty else { return }
        var backlogs = backlogs(plan: plan)
        // On a stale view only orphaned partitions (their owner is lost: evidence) are stolen from.
        if viewIsStale { backlogs = backlogs.filter { $0.key == Self.orphanDonor } }
        guard !backlogs.isEmpty else { return }
        for id in idle + hungry {
            // A hungry worker still runs something: a backlog of one would start as soon elsewhere.
            let isIdle = idle.contains(id)
            let least = isIdle ? 1 : 2
            // Only what the donor will not have started before the steal reaches it.
            let stealable = Dictionary(uniqueKeysWithValues: backlogs.map { donor, backlog in
                (donor, Array(backlog.dropFirst(reachedFirst(by: donor, backlog: backlog, now: now, forIdleThief: isIdle))))
            })
            let donors = stealable.filter { $0.key != id && $0.value.count >= least }
            guard let donor = donors.max(by: { ($0.value.count, $1.key) < ($1.value.count, $0.key) })?.key,
                  let backlog = backlogs[donor], let available = stealable[donor] else { continue }
            let count = stealCount(thief: id, donor: donor, backlog: available.count, idleWorkers: idle.count)
            for shard in backlog.suffix(count).reversed() {
                publish(shard, reason: .stolen, supersede: true, target: (id, plan.assign(to: id)), now: now, actions: &actions)
            }
            backlogs[donor] = Array(backlog.dropLast(count))
            sentWork(to: id, now: now)
        }
    }

    /// How many of `backlog`'s first shards `donor` will likely have started before a steal
    /// decided `now` reaches it, at its measured rate. Those are not stolen: the donor would run
    /// them anyway, and the stolen copy would run them twice. The time it has:
    /// - for an idle thief on a broker that answers quickly (every heartbeat of the last 5–10 s
    ///   applied within `quickLagMs`): the age of its
    ///   last heartbeat (what it did since it reported this backlog), how late heartbeats arrive
    ///   (twice: its heartbeat's trip, and the steal's), and `stealReachMs` for its tail and loop.
    ///   A fixed two intervals instead left the fast workers of `tools/bench/balance` idle for the
    ///   last second of a 7 s job (1.11–1.25 × ideal);
    /// - on a loaded broker, two heartbeat intervals plus the lag: delays there vary far beyond
    ///   their mean (30 workers on two cores, lag 216 ms: the short window stole 1.4 % of 2 000
    ///   shards and 1.1 % ran twice; one interval, 0.9–2.1 %; two, 0.1–0.8 %). For a hungry
    ///   thief (still running its last shards) too: with tiny shards workers are hungry all the
    ///   time, and the short window moved 1.4 % of 10 000 shards between 3 equal workers.
    func reachedFirst(by donor: String, backlog: [String], now: Int64, forIdleThief: Bool = true) -> Int {
        guard donor != Self.orphanDonor, let worker = workers[donor], worker.rate > 0 else { return 0 }
        let windowMs = forIdleThief && recentLags.max <= Self.quickLagMs
            ? Double(max(0, now - worker.lastSeen)) + 2 * heartbeatLagMs + Self.stealReachMs
            : 2 * Double(settings.heartbeatMs) + heartbeatLagMs
        var samples = worker.rate * windowMs / 1_000
        var count = 0
        for shard in backlog where samples > 0 {
            samples -= Double(shards[shard]?.samples ?? 1)
            count += 1
        }
        return count
    }

    /// What a steal's control record needs beyond the broker's lag to be applied by the donor.
    static let stealReachMs = 100.0
    /// Heartbeats applied within this of being sent: the view is fresh enough to steal by it.
    static let quickLagMs = 150.0

    /// Shards an idle worker takes from a donor's backlog of `backlog` shards.
    func stealCount(thief: String, donor: String, backlog: Int, idleWorkers: Int) -> Int {
        let least = settings.stealPerIdleWorker
        let share: Int
        if donor == Self.orphanDonor {
            share = (backlog + idleWorkers - 1) / max(1, idleWorkers)
        } else if let thiefRate = workers[thief]?.rate, let donorRate = workers[donor]?.rate, thiefRate > 0, donorRate > 0 {
            share = Int((Double(backlog) * thiefRate / (thiefRate + donorRate)).rounded())
        } else {
            share = least
        }
        return min(backlog, max(least, share))
    }

    /// Speculative copies: when idle workers have nothing to steal and no shard waits anywhere, a
    /// shard running longer than `speculativeFactor` × the median shard time, and than two
    /// heartbeat intervals, gets a copy on an idle worker (not superseding the original: the first
    /// ack wins).
    mutating func speculate(now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        guard settings.speculative, !viewIsStale else { return }
        let idle = idleWorkers(now: now, plan: plan)
        guard !idle.isEmpty, let median = medianShardMilliseconds else { return }
        var stragglers: [(elapsed: Int64, shard: String, worker: String)] = []
        for entry in shards.openEntries {
            // Nothing may be waiting: every unfinished shard must be running somewhere.
            guard entry.isExecuting(live: plan.live) else { return }
            let running = entry.executions.values.filter { $0.attempt >= entry.supersededBelow && plan.live.contains($0.worker) }
            guard running.count == 1, let execution = running.first, entry.source != nil,
                  entry.attempts[entry.latestAttempt]?.reason != .speculative else { continue }
            let elapsed = now - min(execution.startedAt, execution.firstSeen)
            // A copy starts about a heartbeat interval (plus the view's lag) after it is decided: an
            // execution younger than twice that likely finishes first, and its copy only costs
            // (tiny shards on a busy machine: a sixth of a 50-worker job's tail copied, measured).
            let floor = 2 * (Double(settings.heartbeatMs) + heartbeatLagMs)
            if Double(elapsed) > max(floor, settings.speculativeFactor * Double(max(median, 1))) {
                stragglers.append((elapsed, entry.id, execution.worker))
            }
        }
        stragglers.sort { ($0.elapsed, $1.shard) > ($1.elapsed, $0.shard) }
        var available = idle
        for straggler in stragglers {
            guard let index = available.firstIndex(where: { $0 != straggler.worker }) else { break }
            let id = available.remove(at: index)
            publish(straggler.shard, reason: .speculative, supersede: false, target: (id, plan.assign(to: id)),
                    now: now, actions: &actions)
            sentWork(to: id, now: now)
        }
    }

    /// The median time of winning executions (ack `finishedAt - startedAt`), nil before any.
    var medianShardMilliseconds: Int64? {
        let times = shards.values.compactMap { $0.winner.map { max(0, $0.finishedAt - $0.startedAt) } }.sorted()
        guard !times.isEmpty else { return nil }
        return times[times.count / 2]
    }

    /// Whether heartbeats arrive more than half an interval late on average: the broker is
    /// saturated, idleness and backlogs seen now are already out of date, and moving work on them
    /// makes copies the donors run anyway (measured: at 30-50 workers on one busy broker, 3-5 % of
    /// shards stolen, most run twice). Balancing waits; recovery from lost workers does not.
    var viewIsStale: Bool { heartbeatLagMs > Double(settings.heartbeatMs) / 2 }

    /// `worker` was just sent work: not idle until a heartbeat after the records had time to arrive.
    mutating func sentWork(to worker: String, now: Int64) {
        workers[worker]?.stealBlockedUntil = now + 2 * settings.heartbeatMs
        workers[worker]?.idle = false
        workers[worker]?.idleSince = nil
    }
}
