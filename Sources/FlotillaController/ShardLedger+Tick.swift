import FlotillaCore

extension ShardLedger {
    /// Applies the rules at time `now` and returns what to do, in order. The ledger records each
    /// action as done (a re-enqueued attempt as published, a dead-lettered shard as dead), so the
    /// next tick does not ask again.
    ///
    /// Rules, in order: lost workers (silent for `workerTimeout`: in-flight shards re-enqueued as
    /// `worker-lost`, queued ones as `released`, the worker replaced); hung shards (no progress
    /// for `shardTimeout` on a live worker: abandon, re-enqueue as `lease-expired`, replace the
    /// worker); failed attempts (retry while attempts are left, else dead-letter); superseded
    /// attempts whose successor record is missing (re-published); the warm start of workers still
    /// joining the consumer group (`ShardLedger+WarmStart`); work stealing and speculative
    /// copies (`ShardLedger+Balancing`); the final reconcile; completion.
    ///
    /// Silence, progress and idleness are judged at `judgedTime(now)`: never ahead of what the
    /// controller has been able to read.
    public mutating func tick(now clock: Int64) -> [LedgerAction] {
        let now = judgedTime(clock)
        var actions: [LedgerAction] = []
        var plan = TargetPlan(ledger: self, now: now)

        for id in workers.keys.sorted() {
            guard let worker = workers[id], !worker.lost, now - worker.lastSeen > settings.workerTimeoutMs else { continue }
            let replace = !worker.retiring && worker.state == .running
            markLost(id, now: now, replace: replace, plan: &plan, actions: &actions)
        }
        checkHung(now: now, plan: &plan, actions: &actions)
        checkFailed(now: now, plan: &plan, actions: &actions)
        warmStart(now: now, plan: plan, actions: &actions)
        steal(now: now, plan: &plan, actions: &actions)
        speculate(now: now, plan: &plan, actions: &actions)
        reconcile(now: now, plan: &plan, actions: &actions)

        if !completed, isComplete, !isHeldOpen(now: clock) {
            completed = true
            actions.append(.complete(summary(now: clock)))
        }
        return actions
    }

    /// Every shard the manifest names (submit numbers them `s000000`…) and every other one seen
    /// is done or dead: a foreign or hostile record counted as a dead shard can never stand in
    /// for a submitted shard that is missing.
    public var isComplete: Bool {
        guard let expectedShards, shards.count >= expectedShards, shards.unsettled.isEmpty else { return false }
        // Cheap checks first: this runs every tick, the id walk only once the counts agree.
        return (0..<expectedShards).allSatisfy { shards[ShardRecord.shardID(index: $0)] != nil }
    }

    // MARK: - Lost and hung workers

    /// Marks `worker` lost and re-enqueues what it held.
    mutating func markLost(_ id: String, now: Int64, replace: Bool, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        guard var worker = workers[id] else { return }
        worker.lost = true
        worker.lostAt = now
        workers[id] = worker
        plan.remove(id)
        orphanedPartitions.formUnion((worker.partitions ?? []).filter { plan.owner[$0] == nil })
        if replace {
            replacements += 1
            actions.append(.replaceWorker(worker: id, reason: "no heartbeat for \(settings.workerTimeoutMs) ms"))
        }
        // A worker last heard of before this controller started died while no controller ran
        // (most often with the previous controller, whose local workers die with it): a restart
        // of the controller is not charged to the shards it was running.
        let charged = watchingSince.map { worker.lastSeen >= $0 } ?? true
        for running in worker.inFlight {
            guard let entry = shards[running.shard], !entry.isFinished,
                  let execution = entry.executions[running.run],
                  execution.attempt >= entry.latestAttempt,
                  !entry.isExecuting(live: plan.live) else { continue }
            guard charged else {
                publish(running.shard, reason: .released, supersede: true, target: plan.target(excluding: [id]), now: now, actions: &actions)
                continue
            }
            retryOrBury(running.shard, reason: .workerLost, error: "worker \(id) lost while running attempt \(execution.attempt)",
                        exclude: [id], now: now, plan: &plan, actions: &actions)
        }
        for shard in worker.queued {
            // Only if the worker could hold the latest attempt (it was published before it went silent).
            guard let entry = unclaimed(shard, plan: plan),
                  let latest = entry.attempts[entry.latestAttempt], latest.publishedAt <= worker.lastSeen else { continue }
            publish(shard, reason: .released, supersede: true, target: plan.target(), now: now, actions: &actions)
        }
        releaseWarmTakes(of: id, now: now, plan: &plan, actions: &actions)
        releaseWaiting(on: Set((worker.partitions ?? []).filter { plan.owner[$0] == nil }), charged: charged, now: now, plan: &plan, actions: &actions)
    }

    /// Warm-start shards a lost worker was told to take and never reported (the take reached it
    /// after its last heartbeat): no one else runs them, since the take made the group's copies
    /// skip them, so they waited for the final reconcile (measured: seconds at the end of a job,
    /// and a stopped worker's shards not re-enqueued while it slept).
    mutating func releaseWarmTakes(of id: String, now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        for (shard, take) in warmTakes.sorted(by: { $0.key < $1.key }) where take.worker == id {
            guard let entry = unclaimed(shard, plan: plan), entry.latestAttempt == take.attempt else { continue }
            publish(shard, reason: .released, supersede: true, target: plan.target(), now: now, actions: &actions)
        }
    }

    /// `shard`'s entry when a lost worker's claim on it is the only one: not finished, publishable
    /// again (its source known), and neither running nor queued on a live worker.
    func unclaimed(_ shard: String, plan: TargetPlan) -> ShardEntry? {
        guard let entry = shards[shard], !entry.isFinished, entry.source != nil,
              !entry.isExecuting(live: plan.live), !plan.queued.contains(shard) else { return nil }
        return entry
    }

    /// Records still waiting on a lost worker's partitions reach a new owner only after the group's
    /// session timeout and a rebalance (the final reconcile published them 8–16 s after a kill at
    /// 10 workers, most of the job's time): they go to live owners now, and the originals are
    /// superseded, so the partitions' next owners skip them. Not after a controller restart
    /// (`charged` false): then every worker is gone at once, and the group reassigns everything.
    mutating func releaseWaiting(on orphaned: Set<Int>, charged: Bool, now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        guard charged, !orphaned.isEmpty, !plan.partitions.isEmpty else { return }
        for id in shards.openIDs {
            guard let entry = shards[id], entry.source != nil,
                  let partition = entry.attempts[entry.latestAttempt]?.partition, orphaned.contains(partition),
                  isWaitingInKafka(entry, live: plan.live, queued: plan.queued, owner: plan.owner) else { continue }
            publish(id, reason: .released, supersede: true, target: plan.target(), now: now, actions: &actions)
        }
    }

    /// In-flight shards of live workers whose progress has not moved for `shardTimeout`.
    mutating func checkHung(now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        for id in workers.keys.sorted() {
            guard var worker = workers[id], !worker.lost else { continue }
            var hung: [ShardAttempt] = []
            for running in worker.inFlight {
                guard let entry = shards[running.shard], !entry.isFinished,
                      let execution = entry.executions[running.run],
                      execution.attempt >= entry.latestAttempt,
                      now - execution.lastProgressAt > settings.shardTimeoutMs else { continue }
                hung.append(running)
            }
            guard !hung.isEmpty else { continue }
            for running in hung {
                actions.append(.abandon(worker: id, shard: running.shard, attempt: running.attempt))
                shards[running.shard]?.executions[running.run] = nil
                retryOrBury(running.shard, reason: .leaseExpired,
                            error: "no progress for \(settings.shardTimeoutMs) ms on worker \(id)",
                            exclude: [id], now: now, plan: &plan, actions: &actions)
            }
            worker.inFlight.removeAll { running in hung.contains(running) }
            workers[id] = worker
            if !worker.retiring {
                replacements += 1
                actions.append(.replaceWorker(worker: id, reason: "shard \(hung[0].shard) made no progress for \(settings.shardTimeoutMs) ms"))
            }
        }
    }

    // MARK: - Failed attempts and missing records

    /// Retries shards whose latest attempt failed, or dead-letters them; re-publishes shards whose
    /// latest record was superseded without a successor (the controller died in between).
    mutating func checkFailed(now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        for id in shards.openIDs {
            guard let entry = shards[id], !entry.isFinished, entry.latestAttempt >= 0 else { continue }
            if let failed = entry.failedAttempts[entry.latestAttempt] {
                // Another execution of the same attempt may still finish it: wait for that one.
                guard !entry.isExecuting(live: plan.live) else { continue }
                retryOrBury(id, reason: .retry, error: failed.error, exclude: [failed.worker],
                            now: now, plan: &plan, actions: &actions)
            } else if entry.supersededBelow > entry.latestAttempt, entry.source != nil {
                publish(id, reason: .reconcile, supersede: false, target: plan.target(), now: now, actions: &actions)
            }
        }
    }

    /// Re-enqueues a shard whose attempt failed or was lost, or dead-letters it when that was its
    /// last allowed attempt.
    mutating func retryOrBury(_ id: String, reason: ShardReason, error: String, exclude: Set<String>, now: Int64,
                              plan: inout TargetPlan, actions: inout [LedgerAction]) {
        guard let entry = shards[id], !entry.isFinished else { return }
        let failures = entry.failures + 1
        if failures >= settings.maxAttempts {
            bury(id, why: "failed \(failures) of \(settings.maxAttempts) attempts; last: \(error)", actions: &actions)
        } else {
            publish(id, reason: reason, supersede: true, target: plan.target(excluding: exclude), now: now, actions: &actions)
        }
    }

    /// Dead-letters `id` with `why`.
    mutating func bury(_ id: String, why: String, actions: inout [LedgerAction]) {
        guard var entry = shards[id] else { return }
        entry.dead = why
        // Workers must not run the dead shard again from a redelivered record.
        entry.supersededBelow = max(entry.supersededBelow, entry.latestAttempt + 1)
        shards[id] = entry
        actions.append(.deadLetter(shard: id, attempt: entry.latestAttempt, reason: why))
    }

    /// Records a new attempt of `id` as published and asks for it.
    mutating func publish(_ id: String, reason: ShardReason, supersede: Bool, target: (worker: String, partition: Int)?,
                          now: Int64, actions: inout [LedgerAction]) {
        guard var entry = shards[id], let source = entry.source else { return }
        let attempt = max(entry.latestAttempt + 1, entry.supersededBelow)
        entry.attempts[attempt] = AttemptInfo(reason: reason, partition: target?.partition, offset: nil, publishedAt: now)
        if supersede { entry.supersededBelow = max(entry.supersededBelow, attempt) }
        shards[id] = entry
        let record = ShardRecord(job: job, shard: id, attempt: attempt, source: source, samples: entry.samples,
                                 reason: reason, createdAt: now)
        actions.append(.reEnqueue(record: record, partition: target?.partition, supersede: supersede))
    }

    // MARK: - Final reconcile

    /// A shard whose latest record was lost (offsets committed past it, or dropped by a worker)
    /// is published again — only on evidence, never because this ledger's view lags the topics:
    /// the whole fleet is idle, and the live owner of the record's partition, idle and owning it
    /// for `reconcileAfter`, reports a consumer position past the record's offset (it was
    /// delivered, yet nothing runs, queues or finished it). A record still ahead of the owner's
    /// position, or one whose position is unknown, only after `4 × reconcileAfter`. The new
    /// attempt is judged again only once its own owner has moved past it, so a shard is never
    /// re-enqueued twice for this reason on the same evidence.
    mutating func reconcile(now: Int64, plan: inout TargetPlan, actions: inout [LedgerAction]) {
        let live = workers.values.filter { !$0.lost }
        guard !live.isEmpty, live.allSatisfy(\.idle) else { return }
        let after = settings.reconcileAfterMs
        for id in shards.openIDs {
            guard let entry = shards[id], !entry.isFinished, entry.source != nil,
                  !entry.isExecuting(live: plan.live), !plan.queued.contains(id),
                  let latest = entry.attempts[entry.latestAttempt], now - latest.publishedAt >= after,
                  let partition = latest.partition, let owner = plan.owner[partition].flatMap({ workers[$0] }),
                  let idleSince = owner.idleSince, now - idleSince >= after, now - owner.partitionsSince >= after
            else { continue }
            let movedPast = latest.offset.flatMap { offset in owner.positions[partition].map { $0 > offset } } ?? false
            if !movedPast {
                // Still ahead of the owner, or no position known: a consumer that cannot reach a
                // record for this long is stuck; publish it again rather than wait forever.
                guard now - idleSince >= 4 * after, now - latest.publishedAt >= 4 * after else { continue }
            }
            let reconciled = entry.attempts.values.filter { $0.reason == .reconcile }.count
            if reconciled >= settings.maxAttempts {
                bury(id, why: "published \(reconciled + 1) times and dropped unrun each time (its record never reaches a worker)", actions: &actions)
            } else {
                publish(id, reason: .reconcile, supersede: true, target: plan.target(), now: now, actions: &actions)
            }
        }
    }

    /// A shard whose latest record is still waiting in Kafka: not finished, not executing, not in
    /// a live worker's queue, and not superseded.
    /// A record the owner of its partition reports having received (its position is past the
    /// record's offset) is not waiting, even when its heartbeat shows it nowhere: it finished
    /// between two heartbeats.
    func isWaitingInKafka(_ entry: ShardEntry, live: Set<String>, queued: Set<String>, owner: [Int: String]) -> Bool {
        guard !entry.isFinished && entry.latestAttempt >= entry.supersededBelow && entry.latestAttempt >= 0
            && !entry.isExecuting(live: live) && !queued.contains(entry.id) else { return false }
        guard let latest = entry.attempts[entry.latestAttempt], let partition = latest.partition, let offset = latest.offset,
              let position = owner[partition].flatMap({ workers[$0]?.positions[partition] }) else { return true }
        return position <= offset
    }
}
