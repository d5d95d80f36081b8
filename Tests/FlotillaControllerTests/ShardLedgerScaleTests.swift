import FlotillaController
import FlotillaCore
import Testing

/// The re-enqueue rules at fleet scale, on an injected clock: re-enqueueing must converge, and
/// only evidence (a lost or hung owner, a failure, a record an owner moved past) may cause it —
/// never a view of the topics that lags the fleet.
@Suite("ShardLedger at scale")
struct ShardLedgerScaleTests {
    @Test("100 workers × 10 000 shards, acks visible only 20 s late: the job completes, ≤ 1 % re-enqueued, none by reconcile",
          .timeLimit(.minutes(2)))
    func hundredWorkersLaggingAcks() {
        // Workers differ by a few percent, as real ones do; acks lag by 20 s, as seen on Tansu.
        var fleet = FleetSimulation(workers: 100, shards: 10_000, shardMs: { 40 + Int64($0 % 5) * 2 }, ackLag: 20_000)
        let completed = fleet.run(limit: 120_000)
        #expect(completed)
        let reEnqueues = fleet.reEnqueues
        #expect(reEnqueues.count <= 100, "re-enqueued \(reEnqueues.count): \(Dictionary(grouping: reEnqueues, by: \.record.reason).mapValues(\.count))")
        #expect(reEnqueues.allSatisfy { $0.record.reason != .reconcile })
        #expect(fleet.executions - 10_000 <= 100, "shards run twice: \(fleet.executions - 10_000)")
        let summary = fleet.actions.summary
        #expect(summary?.done == 10_000)
        #expect(summary?.samples == 20_000)
    }

    @Test("10 workers × 2 000 tiny shards with the whole acks topic held back until the fleet is idle: nothing re-enqueued")
    func acksHeldUntilTheEnd() {
        var fleet = FleetSimulation(workers: 10, shards: 2_000, shardMs: { _ in 20 }, ackLag: 60_000)
        let completed = fleet.run(limit: 120_000)
        #expect(completed)
        #expect(fleet.reEnqueues.isEmpty, "\(fleet.reEnqueues.map { ($0.record.shard, $0.record.reason) }.prefix(5))")
        #expect(fleet.executions == 2_000)
    }

    @Test("Progress and phases count shards their workers committed before their acks are visible")
    func committedCountsAsDone() {
        var fleet = FleetSimulation(workers: 4, shards: 40, shardMs: { _ in 50 }, ackLag: 3_600_000)
        let completed = fleet.run(limit: 20_000)
        #expect(!completed)  // no ack visible: never complete
        #expect(fleet.ledger.samplesDone == 80)
        #expect(fleet.ledger.phaseCounts[.done] == 40)
        #expect(!fleet.ledger.isComplete)
        #expect(fleet.reEnqueues.isEmpty)
    }

    @Test("A record its owner moved past without running it is re-published once, after reconcileAfter")
    func lostRecordIsReconciledOnce() {
        var fleet = FleetSimulation(workers: 3, shards: 30, shardMs: { _ in 20 }, ackLag: 500)
        // The owner of shard 7's partition drops its record (offsets committed past it by a predecessor).
        fleet.dropped.insert([7, 0])
        let completed = fleet.run(limit: 60_000)
        #expect(completed)
        let reconciled = fleet.reEnqueues.filter { $0.record.reason == .reconcile }
        #expect(reconciled.map(\.record.shard) == [Fixtures.id(7)])
        #expect(fleet.reEnqueues.count == 1)
    }

    @Test("A record dropped every time it is re-published is dead-lettered after maxAttempts reconciles, not re-published forever")
    func reconcileIsBounded() {
        var fleet = FleetSimulation(workers: 3, shards: 30, shardMs: { _ in 20 }, ackLag: 500)
        for attempt in 0..<10 { fleet.dropped.insert([7, attempt]) }
        let completed = fleet.run(limit: 120_000)
        #expect(completed)
        #expect(fleet.reEnqueues.count == 3)
        #expect(fleet.actions.deadLetters == [Fixtures.id(7)])
    }

    @Test("A record still ahead of its idle owner's position is reconciled only after 4 × reconcileAfter")
    func recordAheadOfOwnerWaits() {
        var ledger = Fixtures.ledger(shards: 1, partition: { _ in 0 })
        let partitions = [0, 1, 2, 3, 4, 5, 6, 7]
        for second in 0...19 {
            let now = Int64(second) * 1_000
            var heartbeat = Fixtures.heartbeat("w1", at: now, partitions: partitions)
            heartbeat.positions = [PartitionPosition(partition: 0, next: 0)]  // offset 0 not received yet
            ledger.apply(heartbeat: heartbeat, receivedAt: now)
            #expect(ledger.tick(now: now).reEnqueues.isEmpty, "at \(now) ms")
        }
        var late = Fixtures.heartbeat("w1", at: 20_000, partitions: partitions)
        late.positions = [PartitionPosition(partition: 0, next: 0)]
        ledger.apply(heartbeat: late, receivedAt: 20_000)
        #expect(ledger.tick(now: 20_500).reEnqueues.map(\.record.reason) == [.reconcile])
    }
}
