@testable import FlotillaController
import FlotillaCore
import Testing

@Suite("ShardLedger failure rules")
struct ShardLedgerTests {
    typealias F = Fixtures

    @Test("A worker silent for workerTimeout is lost: in-flight and queued shards go to a live worker's partitions")
    func lostWorker() {
        var ledger = F.ledger(shards: 4, partition: { $0 < 2 ? 0 : 4 })
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1], partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, running: [(2, 0, 1)], queued: [3], partitions: [4, 5, 6, 7]), receivedAt: 1_000)
        #expect(ledger.tick(now: 5_500).isEmpty, "4.5 s of silence is within the 5 s timeout")

        ledger.apply(heartbeat: F.heartbeat("w2", at: 6_000, running: [(2, 0, 2)], queued: [3], partitions: [4, 5, 6, 7]), receivedAt: 6_000)
        let actions = ledger.tick(now: 6_100)
        #expect(actions.replaced == ["w1"])
        let moved = actions.reEnqueues
        #expect(moved.map(\.record.shard).sorted() == [F.id(0), F.id(1)])
        #expect(moved.first { $0.record.shard == F.id(0) }?.record.reason == .workerLost)
        #expect(moved.first { $0.record.shard == F.id(1) }?.record.reason == .released)
        #expect(moved.allSatisfy { $0.record.attempt == 1 && $0.supersede && (4...7).contains($0.partition ?? -1) })
        #expect(ledger.failures(of: F.id(0)) == 1, "a lost execution counts toward maxAttempts")
        #expect(ledger.failures(of: F.id(1)) == 0, "a released (never started) shard does not")
        #expect(ledger.tick(now: 6_200).isEmpty, "each loss is handled once")
        #expect(ledger.reEnqueues == ["worker-lost": 1, "released": 1])
    }

    @Test("A worker known gone is handled at once, without waiting for the timeout")
    func workerGone() {
        var ledger = F.ledger(shards: 2)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, running: [(1, 0, 1)], partitions: [4, 5, 6, 7]), receivedAt: 1_000)
        let actions = ledger.workerGone("w1", now: 1_100)
        #expect(actions.reEnqueues.map(\.record.shard) == [F.id(0)])
        #expect(actions.replaced.isEmpty, "the fleet restarts exited workers itself")
    }

    @Test("A lost worker's records still waiting on its partitions go to live owners at once (released), not after a rebalance")
    func releasesWaitingRecords() {
        var ledger = F.ledger(shards: 16)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, running: [(4, 0, 1)], partitions: [4, 5, 6, 7]), receivedAt: 1_000)
        let moved = ledger.workerGone("w1", now: 1_100).reEnqueues
        #expect(moved.first?.record.reason == .workerLost && moved.first?.record.shard == F.id(0))
        let released = moved.filter { $0.record.reason == .released }
        #expect(Set(released.map(\.record.shard)) == Set([1, 2, 3, 8, 9, 10, 11].map(F.id)), "what waited on partitions 0-3")
        #expect(released.allSatisfy { $0.supersede && (4...7).contains($0.partition ?? -1) }, "to w2's partitions, originals superseded")

        // After a controller restart every worker is gone at once and the group reassigns it all.
        var restarted = F.ledger(shards: 16)
        restarted.apply(heartbeat: F.heartbeat("w1", at: 1_000, partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        restarted.apply(heartbeat: F.heartbeat("w2", at: 3_000, partitions: [4, 5, 6, 7]), receivedAt: 3_000)
        restarted.watchingSince = 2_000
        #expect(restarted.workerGone("w1", now: 3_100).reEnqueues.isEmpty)
    }

    @Test("A shard with no progress for shardTimeout on a live worker is abandoned, re-enqueued, its worker replaced")
    func hungShard() {
        var ledger = F.ledger(shards: 2)
        for time in stride(from: Int64(1_000), through: 62_000, by: 1_000) {
            ledger.apply(heartbeat: F.heartbeat("w1", at: time, running: [(0, 0, 1)], partitions: [0, 1, 2, 3]), receivedAt: time)
            // w2 makes progress every second: never hung.
            ledger.apply(heartbeat: F.heartbeat("w2", at: time, running: [(1, 0, Int(time / 1_000))], partitions: [4, 5, 6, 7]), receivedAt: time)
        }
        #expect(ledger.tick(now: 60_900).isEmpty, "59.9 s without progress is within the 60 s lease")
        let actions = ledger.tick(now: 61_100)
        #expect(actions.contains(.abandon(worker: "w1", shard: F.id(0), attempt: 0)))
        #expect(actions.reEnqueues.map(\.record.shard) == [F.id(0)])
        #expect(actions.reEnqueues.first?.record.reason == .leaseExpired)
        #expect((4...7).contains(actions.reEnqueues.first?.partition ?? -1), "not back to the hung worker")
        #expect(actions.replaced == ["w1"])
        #expect(!actions.contains { if case .abandon(_, let shard, _) = $0 { shard == F.id(1) } else { false } })
        #expect(ledger.tick(now: 61_200).isEmpty)
    }

    @Test("A failed ack is retried while attempts are left, then dead-lettered with the last error")
    func failedAttempts() {
        var ledger = F.ledger(shards: 2, maxAttempts: 3)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, partitions: [0, 1, 2, 3, 4, 5, 6, 7]), receivedAt: 1_000)
        ledger.apply(ack: F.ack(1, worker: "w1"))
        for attempt in 0..<2 {
            ledger.apply(ack: F.ack(0, attempt: attempt, worker: "w1", status: .failed, error: "boom \(attempt)"))
            let actions = ledger.tick(now: 1_500)
            #expect(actions.reEnqueues.map(\.record.attempt) == [attempt + 1])
            #expect(actions.reEnqueues.first?.record.reason == .retry)
            #expect(ledger.phase(of: F.id(0)) == .pending)
        }
        ledger.apply(ack: F.ack(0, attempt: 2, worker: "w1", status: .failed, error: "boom 2"))
        let actions = ledger.tick(now: 1_600)
        #expect(actions.reEnqueues.isEmpty)
        guard case .deadLetter(let shard, let attempt, let reason)? = actions.first else {
            Issue.record("expected a dead letter, got \(actions.map(\.name))")
            return
        }
        #expect(shard == F.id(0) && attempt == 2)
        #expect(reason.contains("failed 3 of 3 attempts") && reason.contains("boom 2"))
        #expect(ledger.phase(of: F.id(0)) == .dead)
        let summary = actions.summary
        #expect(summary?.done == 1 && summary?.dead == 1 && summary?.shards == 2)
    }

    @Test("A failed ack of an older attempt changes nothing")
    func staleFailure() {
        var ledger = F.ledger(shards: 1)
        ledger.apply(shard: F.shard(0, attempt: 1, reason: .stolen), partition: 1, offset: 9)
        ledger.apply(ack: F.ack(0, attempt: 0, worker: "w1", status: .failed, error: "late"))
        #expect(ledger.tick(now: 1_000).isEmpty)
    }

    @Test("Lost maxAttempts times: dead-lettered, not re-enqueued")
    func lostTooOften() {
        var ledger = F.ledger(shards: 1, maxAttempts: 2)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 0)], partitions: [0]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, partitions: [1]), receivedAt: 1_000)
        _ = ledger.workerGone("w1", now: 1_100)
        #expect(ledger.latestAttempt(of: F.id(0)).attempt == 1)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 2_000, running: [(0, 1, 0)], partitions: [1]), receivedAt: 2_000)
        let actions = ledger.workerGone("w2", now: 2_100)
        #expect(actions.deadLetters == [F.id(0)])
    }

    @Test("Completion: every shard done or dead gives one complete action with the summary")
    func completion() {
        var ledger = F.ledger(shards: 3)
        ledger.apply(ack: F.ack(0, worker: "w1", startedAt: 1_000))
        ledger.apply(ack: F.ack(1, worker: "w1", startedAt: 1_500))
        #expect(ledger.tick(now: 2_000).summary == nil)
        ledger.apply(ack: F.ack(2, worker: "w1", startedAt: 1_000, finishedAt: 4_000))
        // A second done ack from another run: a duplicate execution.
        ledger.apply(ack: F.ack(2, worker: "w2", startedAt: 1_000, finishedAt: 4_500))
        let summary = ledger.tick(now: 5_000).summary
        #expect(summary?.done == 3 && summary?.dead == 0 && summary?.samples == 6)
        #expect(summary?.duplicates == 1)
        #expect(summary?.seconds == 4.0, "from the first execution's start to the tick that saw the job complete")
        #expect(summary?.wallSeconds == 5.0, "from the manifest's createdAt to the same tick")
        #expect(ledger.tick(now: 6_000).summary == nil, "complete is emitted once")
    }

    @Test("Completion waits for shards the manifest announced but no record showed yet")
    func completionWaitsForAllShards() {
        var ledger = ShardLedger(job: F.job, settings: F.settings())
        ledger.apply(manifest: F.manifest(shards: 2))
        ledger.apply(shard: F.shard(0), partition: 0, offset: 0)
        ledger.apply(ack: F.ack(0, worker: "w1"))
        #expect(ledger.tick(now: 1_000).summary == nil)
        #expect(ledger.phaseCounts[.pending] == 1)
    }

    @Test("A done shard is never re-enqueued: not when its worker is lost, fails late, or the fleet idles")
    func doneIsFinal() {
        var ledger = F.ledger(shards: 2)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1], partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, partitions: [4, 5, 6, 7]), receivedAt: 1_000)
        ledger.apply(ack: F.ack(0, worker: "w1"))
        ledger.apply(ack: F.ack(1, worker: "w1", run: "other"))
        // A heartbeat sent before the ack, read after it, must not resurrect the execution.
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_500, running: [(0, 0, 1)], queued: [1], partitions: [0, 1, 2, 3]), receivedAt: 1_500)
        ledger.apply(ack: F.ack(0, attempt: 0, worker: "w3", status: .failed, error: "late", run: "late-run"))
        var all: [LedgerAction] = []
        for now in stride(from: Int64(2_000), through: 60_000, by: 250) {
            ledger.apply(heartbeat: F.heartbeat("w2", at: now, partitions: [4, 5, 6, 7]), receivedAt: now)
            all += ledger.tick(now: now)
        }
        #expect(all.reEnqueues.isEmpty)
        #expect(all.deadLetters.isEmpty)
        #expect(all.summary?.done == 2)
    }

    @Test("A supersede whose successor record is missing (controller died in between) is re-published")
    func supersedeWithoutRecord() {
        var ledger = F.ledger(shards: 1)
        ledger.apply(control: ControlRecord(job: F.job, target: "*", command: .supersede, shard: F.id(0), attempt: 2))
        let actions = ledger.tick(now: 1_000)
        #expect(actions.reEnqueues.map(\.record.attempt) == [2])
        #expect(actions.reEnqueues.first?.record.reason == .reconcile)
        #expect(ledger.tick(now: 1_100).isEmpty)
    }

    @Test("Final reconcile: a record its idle owner moved past, which nothing runs, is re-published while the whole fleet idles")
    func reconcile() {
        var ledger = F.ledger(shards: 3)
        ledger.apply(ack: F.ack(0, worker: "w1"))
        ledger.apply(ack: F.ack(1, worker: "w1"))
        let after = ledger.settings.reconcileAfterMs
        var actions: [LedgerAction] = []
        for now in stride(from: Int64(1_000), through: 1_000 + after + 500, by: 250) {
            var heartbeat = F.heartbeat("w1", at: now, partitions: [0, 1, 2, 3])
            heartbeat.positions = [0, 1, 2, 3].map { PartitionPosition(partition: $0, next: Int64($0 + 1)) }  // shard 2 (offset 2) delivered
            ledger.apply(heartbeat: heartbeat, receivedAt: now)
            ledger.apply(heartbeat: F.heartbeat("w2", at: now, partitions: [4, 5, 6, 7]), receivedAt: now)
            let step = ledger.tick(now: now)
            if now < 1_000 + after { #expect(step.reEnqueues.filter { $0.record.reason == .reconcile }.isEmpty) }
            actions += step
        }
        let reconciled = actions.reEnqueues.filter { $0.record.reason == .reconcile }
        #expect(reconciled.map(\.record.shard) == [F.id(2)])
        #expect(reconciled.count == 1, "not again while the new record is on its way")
    }

    @Test("No reconcile while workers start up: idle without partitions, or with partitions only just assigned")
    func noReconcileAtStart() {
        var ledger = Fixtures.ledger(shards: 4)
        var actions: [LedgerAction] = []
        // 20 s idle with no partitions (joining the group, loading models), then partitions arrive.
        for now in stride(from: Int64(1_000), through: 21_000, by: 500) {
            ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: now, partitions: []), receivedAt: now)
            actions += ledger.tick(now: now)
        }
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 21_500, partitions: [0, 1, 2, 3, 4, 5, 6, 7]), receivedAt: 21_500)
        actions += ledger.tick(now: 21_600)
        #expect(actions.reEnqueues.isEmpty, "records waiting for workers that just got their partitions are not lost")
        #expect(ledger.tick(now: 21_500 + ledger.settings.reconcileAfterMs).reEnqueues.count == 4,
                "still idle with them a reconcile period later: the records were lost")
    }

    @Test("No reconcile while some worker is busy")
    func noReconcileWhileBusy() {
        var ledger = F.ledger(shards: 3)
        var actions: [LedgerAction] = []
        for now in stride(from: Int64(1_000), through: 30_000, by: 500) {
            ledger.apply(heartbeat: F.heartbeat("w1", at: now, running: [(0, 0, Int(now))], partitions: [0, 1, 2, 3, 4, 5, 6, 7]), receivedAt: now)
            actions += ledger.tick(now: now)
        }
        #expect(actions.reEnqueues.isEmpty)
    }
}

@Suite("ShardLedger and controller stalls")
struct ShardLedgerStallTests {
    @Test("A stall of the controller itself does not make live workers look lost")
    func stall() {
        var ledger = Fixtures.ledger(shards: 1)
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], partitions: [0]), receivedAt: 1_000)
        ledger.controllerStalled(for: 8_000, now: 9_500)
        #expect(ledger.tick(now: 9_500).isEmpty, "silent for 8.5 s, but 8 s of it was the controller's own stall")
        #expect(ledger.tick(now: 14_100).replaced == ["w1"], "really silent afterwards: lost")
    }
}
