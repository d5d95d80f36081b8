@testable import FlotillaController
import FlotillaCore
import Testing

@Suite("ShardLedger balancing and replay")
struct ShardLedgerBalancingTests {
    typealias F = Fixtures

    @Test("Stealing takes the tails of the longest queues into the idle worker's partitions, 2 per tick")
    func stealFromLongestQueueTail() {
        var ledger = F.ledger(shards: 6, partition: { $0 < 4 ? 0 : 4 })
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1, 2, 3], partitions: [0, 1, 2]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, running: [(4, 0, 1)], queued: [5], partitions: [3, 4, 5]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w3", at: 1_000, partitions: [6, 7]), receivedAt: 1_000)
        let actions = ledger.tick(now: 1_100)
        let stolen = actions.reEnqueues
        #expect(stolen.map(\.record.shard) == [F.id(3), F.id(2)], "the last of w1's queue, then the next-to-last")
        #expect(stolen.allSatisfy { $0.record.reason == .stolen && $0.record.attempt == 1 && $0.supersede })
        #expect(Set(stolen.compactMap(\.partition)).isSubset(of: [6, 7]))
        #expect(Set(stolen.compactMap(\.partition)).count == 2, "spread over the idle worker's partitions")
        #expect(ledger.tick(now: 1_200).reEnqueues.isEmpty, "the idle worker was just sent work")
    }

    @Test("Shards a worker took in the warm start stay stealable from its queue after the group gives their partitions to others")
    func stealFromWarmTakenQueue() {
        var ledger = F.ledger(shards: 8, partition: { $0 % 2 == 0 ? 0 : 4 })
        // Joining, no assignment yet: w1 is handed warm shards.
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, partitions: []), receivedAt: 1_000)
        let warm = ledger.tick(now: 1_000).takes.map(\.shard)
        #expect(warm.count == 4)
        let indices = warm.map { Int($0.dropFirst())! }
        // The rest is done elsewhere: only w1's queue is left to steal from.
        for index in 0..<8 where !indices.contains(index) { ledger.apply(ack: F.ack(index, worker: "w2", startedAt: 1_000, finishedAt: 1_500)) }
        // The group forms: w1 gets partitions 1-3, w2 owns 0 and 4-5 (where the taken shards' records sit); w3 is idle.
        ledger.apply(heartbeat: F.heartbeat("w1", at: 2_000, running: [(indices[0], 0, 1)], queued: Array(indices.dropFirst()),
                                            partitions: [1, 2, 3]), receivedAt: 2_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 2_000, running: [(99, 0, 1)], partitions: [0, 4, 5]), receivedAt: 2_000)
        ledger.apply(heartbeat: F.heartbeat("w3", at: 2_000, partitions: [6, 7]), receivedAt: 2_000)
        let stolen = ledger.tick(now: 2_100).reEnqueues.map(\.record.shard)
        #expect(!stolen.isEmpty && Set(stolen).isSubset(of: Set(warm.dropFirst())), "w1's queued warm shards: \(stolen)")
    }

    @Test("An idle worker with records waiting on its own partitions is waiting for a fetch: no stealing for it")
    func noStealForAWorkerWithItsOwnBacklog() {
        var ledger = F.ledger(shards: 6, partition: { $0 < 4 ? 0 : 6 })
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1, 2, 3], partitions: [0, 1, 2]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w3", at: 1_000, partitions: [6, 7]), receivedAt: 1_000)
        #expect(ledger.tick(now: 1_100).reEnqueues.isEmpty, "s000004 and s000005 wait on w3's partition 6")
        // Once its own records are done, it steals again.
        for index in [4, 5] { ledger.apply(ack: F.ack(index, worker: "w3", startedAt: 1_000, finishedAt: 1_200)) }
        ledger.apply(heartbeat: F.heartbeat("w3", at: 1_300, partitions: [6, 7]), receivedAt: 1_300)
        #expect(ledger.tick(now: 1_400).reEnqueues.map(\.record.shard) == [F.id(3), F.id(2)])
    }

    @Test("Heartbeats arriving late (a saturated broker) stop stealing and speculation until they are timely again")
    func noBalancingOnAStaleView() {
        var ledger = F.ledger(shards: 6, partition: { $0 < 4 ? 0 : 4 })
        // Sent at 1 000, applied 2 s later: idleness and queues seen now are 2 s old.
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1, 2, 3], partitions: [0, 1, 2]), receivedAt: 3_000)
        ledger.apply(heartbeat: F.heartbeat("w3", at: 1_000, partitions: [6, 7]), receivedAt: 3_000)
        #expect(ledger.viewIsStale)
        #expect(ledger.tick(now: 3_100).reEnqueues.isEmpty, "no work moved on a view 2 s old")
        // Timely heartbeats bring the smoothed lag back under half an interval, and w3 steals.
        for step in 1...8 {
            let at = 3_000 + Int64(step) * 1_000
            ledger.apply(heartbeat: F.heartbeat("w1", at: at, running: [(0, 0, 1)], queued: [1, 2, 3], partitions: [0, 1, 2]), receivedAt: at + 20)
            ledger.apply(heartbeat: F.heartbeat("w3", at: at, partitions: [6, 7]), receivedAt: at + 20)
        }
        #expect(!ledger.viewIsStale)
        #expect(ledger.tick(now: 11_100).reEnqueues.map(\.record.shard) == [F.id(3), F.id(2)])
    }

    @Test("Stealing takes records still waiting in Kafka on a busy worker's partitions, last offset first")
    func stealFromKafkaBacklog() {
        var ledger = F.ledger(shards: 6, partition: { _ in 0 })
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], partitions: [0, 1]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, partitions: [2, 3]), receivedAt: 1_000)
        let stolen = ledger.tick(now: 1_100).reEnqueues
        #expect(stolen.map(\.record.shard) == [F.id(5), F.id(4)])
    }

    @Test("No stealing from a worker that is not busy, nor for a worker that is")
    func noStealWhenBalanced() {
        var ledger = F.ledger(shards: 4)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1], partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, running: [(2, 0, 1)], queued: [3], partitions: [4, 5, 6, 7]), receivedAt: 1_000)
        #expect(ledger.tick(now: 1_100).isEmpty)
    }

    @Test("Speculative copy of a shard running over 3x the median, on an idle worker, without superseding")
    func speculative() {
        var ledger = F.ledger(shards: 5)
        for index in 0..<4 { ledger.apply(ack: F.ack(index, worker: "w2", startedAt: 0, finishedAt: 1_000)) }
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(4, 0, 1)], partitions: [0, 1, 2, 3], startedAt: 1_000), receivedAt: 1_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 1_000, partitions: [4, 5, 6, 7]), receivedAt: 1_000)
        #expect(ledger.tick(now: 3_000).isEmpty, "2 s is not over 3 x 1 s")
        ledger.apply(heartbeat: F.heartbeat("w1", at: 4_000, running: [(4, 0, 1)], partitions: [0, 1, 2, 3], startedAt: 1_000), receivedAt: 4_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 4_000, partitions: [4, 5, 6, 7]), receivedAt: 4_000)
        let copies = ledger.tick(now: 4_500).reEnqueues
        #expect(copies.map(\.record.shard) == [F.id(4)])
        #expect(copies.first?.record.reason == .speculative && copies.first?.supersede == false)
        #expect((4...7).contains(copies.first?.partition ?? -1))
        ledger.apply(heartbeat: F.heartbeat("w2", at: 8_000, partitions: [4, 5, 6, 7]), receivedAt: 8_000)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 8_000, running: [(4, 0, 1)], partitions: [0, 1, 2, 3], startedAt: 1_000), receivedAt: 8_000)
        #expect(ledger.tick(now: 8_100).reEnqueues.filter { $0.record.reason == .speculative }.isEmpty, "one copy per shard")
    }

    @Test("No speculative copy when the job says so")
    func speculativeOff() {
        var ledger = F.ledger(shards: 5, speculative: false)
        for index in 0..<4 { ledger.apply(ack: F.ack(index, worker: "w2", startedAt: 0, finishedAt: 1_000)) }
        ledger.apply(heartbeat: F.heartbeat("w1", at: 9_000, running: [(4, 0, 1)], partitions: [0, 1, 2, 3], startedAt: 1_000), receivedAt: 9_000)
        ledger.apply(heartbeat: F.heartbeat("w2", at: 9_000, partitions: [4, 5, 6, 7]), receivedAt: 9_000)
        #expect(ledger.tick(now: 9_100).isEmpty)
    }

    @Test("Replay is idempotent: the same records twice, or in another order across topics, give the same ledger")
    func replayIdempotence() {
        var records: [(inout ShardLedger) -> Void] = []
        records.append { $0.apply(manifest: F.manifest(shards: 4)) }
        for index in 0..<4 { records.append { $0.apply(shard: F.shard(index), partition: index, offset: 0) } }
        records.append { $0.apply(shard: F.shard(1, attempt: 1, reason: .workerLost, at: 3_000), partition: 5, offset: 1) }
        records.append { $0.apply(control: ControlRecord(job: F.job, target: "*", command: .supersede, shard: F.id(1), attempt: 1)) }
        records.append { $0.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [2], partitions: [0, 1, 2, 3]), receivedAt: 1_000) }
        records.append { $0.apply(heartbeat: F.heartbeat("w2", at: 2_000, running: [(1, 1, 1)], partitions: [4, 5, 6, 7]), receivedAt: 2_000) }
        records.append { $0.apply(ack: F.ack(0, worker: "w1")) }
        records.append { $0.apply(ack: F.ack(3, worker: "w1", status: .failed, error: "bad")) }
        records.append { $0.apply(deadLetter: DeadLetterRecord(job: F.job, shard: F.id(2), attempt: 0, reason: "poison", from: "w1")) }

        var once = ShardLedger(job: F.job, settings: F.settings())
        for apply in records { apply(&once) }
        var twice = once
        for apply in records { apply(&twice) }
        #expect(once == twice)

        var reversed = ShardLedger(job: F.job, settings: F.settings())
        for apply in records.reversed() { apply(&reversed) }
        for index in 0..<4 { #expect(reversed.phase(of: F.id(index)) == once.phase(of: F.id(index))) }
        #expect(reversed.latestAttempt(of: F.id(1)).attempt == 1)

        // The decisions after replay are the same too, and replaying their records changes nothing.
        let actions = once.tick(now: 3_500)
        #expect(reversed.tick(now: 3_500) == actions)
        var again = once
        for action in actions {
            if case .reEnqueue(let record, let partition, _) = action { again.apply(shard: record, partition: partition) }
        }
        #expect(again.tick(now: 3_600) == once.tick(now: 3_600))
    }

    @Test("Replaying an old heartbeat of a dead worker declares it lost at once, without repeating a finished re-enqueue")
    func restartAfterCrash() {
        var ledger = F.ledger(shards: 2)
        ledger.apply(heartbeat: F.heartbeat("w1", at: 1_000, running: [(0, 0, 1), (1, 0, 1)], partitions: [0, 1]), receivedAt: 1_000)
        // The previous controller already re-enqueued s000000 before it died.
        ledger.apply(shard: F.shard(0, attempt: 1, reason: .workerLost, at: 7_000), partition: 2, offset: 1)
        ledger.apply(control: ControlRecord(job: F.job, target: "*", command: .supersede, shard: F.id(0), attempt: 1))
        ledger.apply(heartbeat: F.heartbeat("w2", at: 20_000, running: [(0, 1, 1)], partitions: [2, 3]), receivedAt: 20_000)
        let actions = ledger.tick(now: 20_100)
        #expect(actions.reEnqueues.map(\.record.shard) == [F.id(1)])
        #expect(actions.replaced == ["w1"])
    }
}

@Suite("ShardLedger cost")
struct ShardLedgerCostTests {
    @Test("A tick over 20 000 shards and 16 workers stays far below the 250 ms tick interval")
    func tickCost() {
        var ledger = Fixtures.ledger(shards: 20_000, partition: { $0 % 128 })
        for index in 0..<10_000 { ledger.apply(ack: Fixtures.ack(index, worker: "w1")) }
        for worker in 0..<16 {
            let partitions = Array(stride(from: worker, to: 128, by: 16))
            let running = (0..<2).map { (10_000 + worker * 2 + $0, 0, 1) }
            let queued = (0..<4).map { 10_100 + worker * 4 + $0 }
            ledger.apply(heartbeat: Fixtures.heartbeat("w\(worker)", at: 1_000, running: running, queued: queued, partitions: partitions),
                         receivedAt: 1_000)
        }
        let clock = ContinuousClock()
        var actions = 0
        let took = clock.measure {
            for step in 0..<10 { actions += ledger.tick(now: 1_100 + Int64(step) * 250).count }
        }
        print("ShardLedger.tick over 20 000 shards, 16 workers: \(took / 10) per tick")
        #expect(took / 10 < .milliseconds(250))
    }
}

@Suite("ShardLedger stealing does not repeat")
struct ShardLedgerStealOnceTests {
    @Test("A stolen shard still listed in its old owner's queue is not stolen again")
    func stealOnce() {
        var ledger = Fixtures.ledger(shards: 4, partition: { _ in 0 })
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1, 2, 3], partitions: [0, 1]), receivedAt: 1_000)
        ledger.apply(heartbeat: Fixtures.heartbeat("w2", at: 1_000, partitions: [2, 3]), receivedAt: 1_000)
        let first = ledger.tick(now: 1_100).reEnqueues.map(\.record.shard)
        #expect(first == [Fixtures.id(3), Fixtures.id(2)])
        // w1 has not read the supersedes yet; w2 reports idle again after the block.
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 4_000, running: [(0, 0, 2)], queued: [1, 2, 3], partitions: [0, 1]), receivedAt: 4_000)
        ledger.apply(heartbeat: Fixtures.heartbeat("w2", at: 4_000, partitions: [2, 3]), receivedAt: 4_000)
        let second = ledger.tick(now: 4_100).reEnqueues.map(\.record.shard)
        #expect(second == [Fixtures.id(1)], "only the shard w1 really still holds")
    }
}

@Suite("ShardLedger stealing by measured rates")
struct ShardLedgerRateStealTests {
    @Test("A fast idle worker takes its rate share of a slow worker's backlog, from the tail, in one go")
    func proportionalSteal() {
        var ledger = Fixtures.ledger(shards: 14, partition: { _ in 0 })
        // w1 does 3 samples/s, w2 1 sample/s while busy (shards of 2 samples).
        var fast = Fixtures.heartbeat("w1", at: 1_000, running: [(13, 0, 1)], partitions: [2, 3])
        fast.samplesPerSecond = 3
        ledger.apply(heartbeat: fast, receivedAt: 1_000)
        var slow = Fixtures.heartbeat("w2", at: 1_000, running: [(0, 0, 1)], queued: Array(1...12), partitions: [0, 1])
        slow.samplesPerSecond = 1
        ledger.apply(heartbeat: slow, receivedAt: 1_000)
        ledger.apply(ack: Fixtures.ack(13, worker: "w1"))
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 2_000, partitions: [2, 3]), receivedAt: 2_000)
        let stolen = ledger.tick(now: 2_100).reEnqueues
        // w2 starts one more shard (2 samples at 1 sample/s: a heartbeat rounded up) before the steal reaches it.
        #expect(stolen.count == 8, "(12 - 1) x 3 / (3 + 1)")
        #expect(stolen.map(\.record.shard) == (5...12).reversed().map(Fixtures.id), "the tail of w2's queue, last first")
        #expect(Set(stolen.compactMap(\.partition)) == [2, 3])
    }
}

@Suite("ShardLedger stealing for hungry workers")
struct ShardLedgerHungryTests {
    @Test("A worker about to run dry gets work before it goes idle; not from a backlog of one")
    func hungry() {
        var ledger = Fixtures.ledger(shards: 6, partition: { $0 == 5 ? 2 : 0 })
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1, 2, 3], partitions: [0, 1]), receivedAt: 1_000)
        // w2 runs its last shard: nothing queued, nothing waiting on its partitions.
        ledger.apply(heartbeat: Fixtures.heartbeat("w2", at: 1_000, running: [(4, 0, 1)], partitions: [2, 3]), receivedAt: 1_000)
        #expect(ledger.tick(now: 1_100).reEnqueues.isEmpty, "w2 still has s000005 waiting on partition 2")
        ledger.apply(heartbeat: Fixtures.heartbeat("w2", at: 1_500, running: [(4, 0, 1), (5, 0, 1)], partitions: [2, 3]), receivedAt: 1_500)
        let stolen = ledger.tick(now: 1_600).reEnqueues
        #expect(stolen.map(\.record.shard) == [Fixtures.id(3), Fixtures.id(2)])
        var other = Fixtures.ledger(shards: 3, partition: { _ in 0 })
        other.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, running: [(0, 0, 1)], queued: [1], partitions: [0, 1]), receivedAt: 1_000)
        other.apply(heartbeat: Fixtures.heartbeat("w2", at: 1_000, running: [(2, 0, 1)], partitions: [2, 3]), receivedAt: 1_000)
        #expect(other.tick(now: 1_100).reEnqueues.isEmpty)
    }
}

@Suite("ShardLedger stealing never takes what the donor will start first")
struct ShardLedgerStealReachTests {
    @Test("A backlog the donor starts within a heartbeat interval at its rate is not stolen from")
    func quickBacklogIsLeftAlone() {
        var ledger = Fixtures.ledger(shards: 14, partition: { _ in 0 })
        var donor = Fixtures.heartbeat("w2", at: 1_000, running: [(0, 0, 1)], queued: Array(1...12), partitions: [0, 1])
        donor.samplesPerSecond = 30  // 15 shards/s: its 12 queued shards start within 0.8 s
        ledger.apply(heartbeat: donor, receivedAt: 1_000)
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, partitions: [2, 3]), receivedAt: 1_000)
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 2_000, partitions: [2, 3]), receivedAt: 2_000)
        #expect(ledger.tick(now: 2_100).reEnqueues.isEmpty)
    }

    @Test("For an idle thief on a quick broker the donor keeps what it starts before the steal reaches it by its heartbeat's age; on a loaded one or for a hungry thief, two intervals' worth")
    func windowFollowsTheView() {
        func donorLedger(lagMs: Int64) -> ShardLedger {
            var ledger = Fixtures.ledger(shards: 14, partition: { _ in 0 })
            var donor = Fixtures.heartbeat("w2", at: 2_000 - lagMs, running: [(0, 0, 1)], queued: Array(1...12), partitions: [0, 1])
            donor.samplesPerSecond = 4  // 2 shards/s: 4 shards in two intervals
            ledger.apply(heartbeat: donor, receivedAt: 2_000)
            return ledger
        }
        let backlog = (1...12).map(Fixtures.id)
        let quick = donorLedger(lagMs: 10)
        // 100 ms since its heartbeat, twice the lag, 100 ms for the steal's trip: 0.3 s at 4 samples/s.
        #expect(quick.reachedFirst(by: "w2", backlog: backlog, now: 2_100) == 1)
        #expect(quick.reachedFirst(by: "w2", backlog: backlog, now: 2_900) == 3, "an older heartbeat: it has run more since")
        #expect(quick.reachedFirst(by: "w2", backlog: backlog, now: 2_100, forIdleThief: false) == 5,
                "a hungry thief (still running) waits for two intervals' worth")
        var stalled = donorLedger(lagMs: 10)
        stalled.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_600, partitions: [2, 3]), receivedAt: 2_000)
        stalled.apply(heartbeat: Fixtures.heartbeat("w1", at: 2_050, partitions: [2, 3]), receivedAt: 2_060)
        #expect(stalled.heartbeatLagMs < 150 && stalled.reachedFirst(by: "w2", backlog: backlog, now: 2_100) == 5,
                "one heartbeat 400 ms late lately: the long window, though the mean is small again")
        let loaded = donorLedger(lagMs: 300)
        #expect(loaded.reachedFirst(by: "w2", backlog: backlog, now: 2_100) == 5, "(2 x 1 s + 0.3 s) at 4 samples/s")
    }
}
