@testable import FlotillaController
import FlotillaCore
import Testing

extension Array where Element == LedgerAction {
    /// Warm-start takes: (worker, shard id).
    var takes: [(worker: String, shard: String)] {
        compactMap { if case .take(let worker, let shard, _, _, _) = $0 { (worker, shard) } else { nil } }
    }
}

@Suite("Shard ledger: warm start of joining workers")
struct ShardLedgerWarmStartTests {
    /// A ledger of `shards` pending shards with w1 and w2 joining (no assignment yet), and the
    /// takes its first tick hands out.
    func twoJoining(shards: Int) -> (ledger: ShardLedger, takes: [(worker: String, shard: String)]) {
        var ledger = Fixtures.ledger(shards: shards)
        for worker in ["w1", "w2"] {
            ledger.apply(heartbeat: Fixtures.heartbeat(worker, at: 1_000, partitions: []), receivedAt: 1_000)
        }
        let takes = ledger.tick(now: 1_000).takes
        return (ledger, takes)
    }

    @Test("a worker without an assignment is handed pending first publications from the end: 4, then 2 more per finished one")
    func handsOutShares() {
        var (ledger, takes) = twoJoining(shards: 100)
        #expect(takes.filter { $0.worker == "w1" }.count == 4)
        #expect(takes.filter { $0.worker == "w2" }.count == 4)
        #expect(Set(takes.map(\.shard)).count == 8, "no shard handed out twice")
        // From the end of the backlog, where the group's owners arrive last.
        #expect(Set(takes.map(\.shard)) == Set((92..<100).map(Fixtures.id)))
        #expect(ledger.tick(now: 1_100).takes.isEmpty, "nothing more while they hold their 4")
        // w1 finishes its 4: it may now hold 4 + 2 × 4 = 12; w2, still busy, gets nothing.
        var beat = Fixtures.heartbeat("w1", at: 1_200, partitions: [])
        beat.committed = takes.filter { $0.worker == "w1" }.map { CommittedShard(shard: $0.shard, attempt: 0, run: "r-\($0.shard)", samples: 2) }
        ledger.apply(heartbeat: beat, receivedAt: 1_200)
        let more = ledger.tick(now: 1_200).takes
        #expect(more.count == 12 && more.allSatisfy { $0.worker == "w1" })

        let shares = twoJoining(shards: 6).takes
        #expect(shares.filter { $0.worker == "w1" }.count == 3 && shares.filter { $0.worker == "w2" }.count == 3, "each its share")
    }

    @Test("more once the warm shards are committed; assigned workers get none")
    func refillsAndStops() {
        var ledger = Fixtures.ledger(shards: 40)
        var taken: [(worker: String, shard: String)] = []
        for round in 0..<4 {
            var beat = Fixtures.heartbeat("w1", at: 1_000 + Int64(round), partitions: [])
            beat.committed = taken.map { CommittedShard(shard: $0.shard, attempt: 0, run: "r-\($0.shard)", samples: 2) }
            ledger.apply(heartbeat: beat, receivedAt: 1_000 + Int64(round))
            taken = ledger.tick(now: 1_000 + Int64(round)).takes
            #expect(taken.count == [4, 12, 24, 0][round], "round \(round): at most warmStartShards (32), and 40 in all")
        }

        var assigned = Fixtures.ledger(shards: 10)
        assigned.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, partitions: [0, 1, 2, 3, 4, 5, 6, 7]), receivedAt: 1_000)
        #expect(assigned.tick(now: 1_000).takes.isEmpty)
        // A late joiner once the group has formed: served by stealing, not the warm start.
        assigned.apply(heartbeat: Fixtures.heartbeat("w2", at: 1_000, partitions: []), receivedAt: 1_000)
        #expect(assigned.tick(now: 1_000).takes.isEmpty)
    }

    @Test("once workers report rates, each holds what it finishes in a heartbeat interval (at least 4): a slow worker is not given a fast one's backlog")
    func holdsByRate() {
        // 200 shards of 2 samples, heartbeats every second.
        var ledger = Fixtures.ledger(shards: 200)
        var taken: [String: [String]] = [:]
        for worker in ["w1", "w2"] {
            ledger.apply(heartbeat: Fixtures.heartbeat(worker, at: 1_000, partitions: []), receivedAt: 1_000)
        }
        for take in ledger.tick(now: 1_000).takes { taken[take.worker, default: []].append(take.shard) }
        // Both finish their 4; w1 runs 20 samples/s (10 shards a second), w2 4 samples/s (2 a second).
        for (worker, rate) in [("w1", 20.0), ("w2", 4.0)] {
            var beat = Fixtures.heartbeat(worker, at: 2_000, running: [(199, 0, 1)], partitions: [])
            beat.samplesPerSecond = rate
            beat.committed = taken[worker, default: []].map { CommittedShard(shard: $0, attempt: 0, run: "r-\($0)", samples: 2) }
            ledger.apply(heartbeat: beat, receivedAt: 2_000)
        }
        let more = ledger.tick(now: 2_000).takes
        #expect(more.filter { $0.worker == "w1" }.count == 10, "a second of w1's work (its slow start would allow 12)")
        #expect(more.filter { $0.worker == "w2" }.count == 4, "w2's rate gives 2: the floor of 4 holds")
    }

    @Test("never a shard that is queued, running elsewhere, or re-enqueued")
    func skipsHeldWork() {
        var ledger = Fixtures.ledger(shards: 6)
        // w2, also still joining, runs shard 0 and queues shard 1 (from an earlier warm start).
        ledger.apply(heartbeat: Fixtures.heartbeat("w2", at: 1_000, running: [(0, 0, 1)], queued: [1, 2], partitions: []), receivedAt: 1_000)
        // Shard 3's latest attempt is a re-enqueue.
        ledger.apply(shard: Fixtures.shard(3, attempt: 1, reason: .stolen, at: 500), partition: 3, offset: 10)
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, partitions: []), receivedAt: 1_000)
        let taken = Set(ledger.tick(now: 1_000).takes.filter { $0.worker == "w1" }.map(\.shard))
        #expect(taken.isSubset(of: [Fixtures.id(4), Fixtures.id(5)]) && !taken.isEmpty)
        #expect(!taken.contains(Fixtures.id(3)))
    }

    @Test("a worker lost before it reported its takes: they are released at once, not left to the final reconcile")
    func lostTakerReleasesTakes() {
        var (ledger, takes) = twoJoining(shards: 8)
        let w1Takes = Set(takes.filter { $0.worker == "w1" }.map(\.shard))
        #expect(w1Takes.count == 4)
        // w1 reports one of them running, then goes silent (stopped) before it reports the others;
        // w2 keeps heartbeating with its own takes queued.
        let reported = w1Takes.sorted()[0]
        let reportedIndex = Int(reported.dropFirst())!
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_200, running: [(reportedIndex, 0, 0)], partitions: []), receivedAt: 1_200)
        let w2Queued = takes.filter { $0.worker == "w2" }.map { Int($0.shard.dropFirst())! }
        for time in stride(from: Int64(1_500), through: 7_000, by: 500) {
            ledger.apply(heartbeat: Fixtures.heartbeat("w2", at: time, queued: w2Queued, partitions: []), receivedAt: time)
        }
        let reEnqueued = ledger.tick(now: 7_000).reEnqueues
        let reasons = Dictionary(grouping: reEnqueued, by: \.record.shard).mapValues { $0.map(\.record.reason) }
        #expect(reasons[reported] == [.workerLost])
        for shard in w1Takes where shard != reported {
            #expect(reasons[shard] == [.released], "\(shard), taken and never reported, is released")
        }
        #expect(reEnqueued.allSatisfy { $0.supersede }, "the originals are superseded: the taker drops them if it wakes")
        #expect(reEnqueued.count == 4, "none of w2's takes")
    }

    @Test("a new process reusing a retired worker's id is warm-started (the fleet scaled to zero and back)")
    func reusedIDIsWarmStarted() {
        var ledger = Fixtures.ledger(shards: 4)
        // w1 ran, was told to drain and stopped; its entry keeps the retiring mark.
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, partitions: [0, 1, 2, 3]), receivedAt: 1_000)
        ledger.retire("w1")
        // A new w1 joins, no assignment yet: without `workerStarting` the stale mark keeps it out.
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 2_000, partitions: []), receivedAt: 2_000)
        #expect(ledger.tick(now: 2_000).takes.isEmpty, "a retiring worker takes nothing")
        ledger.workerStarting("w1")
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 2_100, partitions: []), receivedAt: 2_100)
        #expect(ledger.tick(now: 2_100).takes.count == 4)
    }
}
