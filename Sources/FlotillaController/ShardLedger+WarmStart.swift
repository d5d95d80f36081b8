import FlotillaCore

extension ShardLedger {
    /// The warm start: a worker that has joined (it heartbeats) but has no consumer-group
    /// assignment yet is told to take pending shards straight from the shards topic, so it works
    /// from its first second instead of after the group's join (~3 s: the broker's initial
    /// rebalance delay, measured on the embedded broker; Apache Kafka's default is the same).
    ///
    /// The consumer group stays the balancing mechanism; this only fills the join window, while no
    /// live worker owns a partition yet. Other workers see the `take` on the control topic and
    /// skip their group copy of that attempt. If the taker fails, its heartbeats (which list the
    /// shard once queued) make it worker-lost and re-enqueued; takes it never reported are released
    /// when it is lost (`releaseWarmTakes`), and a take that never reached a live worker is caught
    /// by the final reconcile.
    ///
    /// Each joining worker holds at most 4 unfinished warm shards, 2 more for each it finished,
    /// and, once it reports a rate, no more than it finishes in a heartbeat interval (at least 4);
    /// never more than `warmStartShards` nor its share of what is pending. Only first
    /// publications are handed out, and never a shard queued at or running on any worker.
    mutating func warmStart(now: Int64, plan: TargetPlan, actions: inout [LedgerAction]) {
        // Only while the group has not formed: once any worker owns partitions, its group copies
        // race the takes, and a late joiner is served by stealing instead (measured: 2 % of
        // 2 000 shards ran twice with 10 workers when joiners were warm-started throughout).
        guard settings.warmStartShards > 0, plan.owner.isEmpty else { return }
        let joining = workers.values
            .filter { !$0.lost && !$0.retiring && $0.state == .running && $0.partitions?.isEmpty == true }
            .map(\.id).sorted()
        guard !joining.isEmpty else { return }
        // From the end of the backlog: when the group forms, partition owners start at the head,
        // so a take issued while the controller does not know of it yet (up to a heartbeat late)
        // collides with a group copy only in a job a few shards deep. Taking from the head made
        // every late take a shard run twice (measured: 11–32 of 2 000 with 3 workers).
        var candidates = shards.openIDs.reversed().compactMap { id -> (String, Int, Int, Int64)? in
            guard let entry = shards[id], warmTakes[id] == nil, !entry.isFinished, entry.source != nil,
                  entry.latestAttempt >= max(0, entry.supersededBelow), !entry.isExecuting(live: plan.live),
                  !plan.queued.contains(id), let latest = entry.attempts[entry.latestAttempt],
                  // Only first publications: a re-enqueued attempt goes to a working owner's
                  // partition and its express lane, which beats a worker still starting.
                  latest.reason == .initial,
                  let partition = latest.partition, let offset = latest.offset else { return nil }
            return (id, entry.latestAttempt, partition, offset)
        }
        guard !candidates.isEmpty else { return }
        let share = (candidates.count + joining.count - 1) / joining.count
        for worker in joining {
            // Unfinished warm shards it was given lately (an old one that never showed up is the reconcile's).
            let held = warmTakes.filter { shard, take in
                take.worker == worker && now - take.at < settings.workerTimeoutMs && !(shards[shard]?.isFinished ?? true)
            }.count
            // Demand-driven, like a slow start: 4 at first, then 2 more for each one it finished,
            // so a slow worker is not handed a backlog it would finish last (measured: dealing 32
            // each at once made a fleet with one 3x slower worker 1.59x the ideal time). Not 8 at
            // first: the controller does not know a worker's slots, and workers of 2 slots queued
            // 6 they could not start and released them when drained (23 re-enqueued in
            // `AutoscaleTests.scaleInNeverInterrupts`), for ~3 % more of a fast model's first seconds.
            let finished = warmTakes.filter { shard, take in take.worker == worker && (shards[shard]?.isDone ?? false) }.count
            // And by its measured rate: what it holds is what it runs last, so a slow worker that
            // held as much as a fast one ended the job alone (one 3x slower worker of 3: its taken
            // shards ran 2.6 s past the others, 1.36x the ideal time, measured).
            let budget = min(share, settings.warmStartShards, 4 + 2 * finished, shardsPerInterval(of: worker) ?? .max) - held
            guard budget > 0 else { continue }
            for (shard, attempt, partition, offset) in candidates.prefix(budget) {
                warmTakes[shard] = WarmTake(worker: worker, attempt: attempt, at: now)
                actions.append(.take(worker: worker, shard: shard, attempt: attempt, partition: partition, offset: offset))
            }
            candidates.removeFirst(min(budget, candidates.count))
            if candidates.isEmpty { break }
        }
    }

    /// The shards `worker` finishes in one heartbeat interval at its measured rate, at least 4;
    /// nil before it reports a rate.
    func shardsPerInterval(of worker: String) -> Int? {
        guard let rate = workers[worker]?.rate, rate > 0 else { return nil }
        let samplesPerShard = Double(expectedSamples ?? 0) / Double(max(1, expectedShards ?? 0))
        guard samplesPerShard > 0 else { return nil }
        return max(4, Int((rate * Double(settings.heartbeatMs) / 1_000 / samplesPerShard).rounded(.up)))
    }
}
