import FlotillaCore
import Foundation
@testable import FlotillaWorker
import RdKafka
import Testing

/// The machine's action step, as the worker's event loop calls it after every event.
extension WorkerMachineTests {
    func actions(_ machine: inout WorkerMachine, at now: ContinuousClock.Instant,
                 skip: (ShardRecord) -> String? = { _ in nil }) -> [WorkerAction] {
        machine.actions(at: now, stamp: 1, skipReason: skip) { UUID().uuidString }
    }

    func started(_ actions: [WorkerAction]) -> [(shard: QueuedShard, run: String)] {
        actions.compactMap { if case .start(let shard, let run) = $0 { (shard, run) } else { nil } }
    }

    func published(_ actions: [WorkerAction]) -> [String]? {
        for case .publish(let batch) in actions { return batch.map(\.ack.shard) }
        return nil
    }

    @Test("actions: every shard that fits starts and skipped ones are released; then one commit at a time — released offsets, a lingering transaction, a settle once idle")
    func oneCommitAtATime() throws {
        let t0 = ContinuousClock.now
        var machine = machine(4, slots: 2)  // s0 p0@0, s1 p1@0, s2 p0@1, s3 p1@1
        let first = actions(&machine, at: t0, skip: { $0.shard == "s000000" ? "already done" : nil })
        #expect(started(first).map(\.shard.record.shard) == ["s000001", "s000002"])
        #expect(first.contains { if case .skip(let shard, _) = $0 { shard.record.shard == "s000000" } else { false } })
        let offsets = first.compactMap { if case .commitOffsets(let offsets) = $0 { offsets } else { nil } }
        #expect(offsets.first?.map { [$0.topicPartition.partition: $0.offset] } == [[0: 1]], "the skipped record's offset")
        #expect(actions(&machine, at: t0).isEmpty, "slots full, a commit in flight")
        machine.offsetsCommitted()

        let (s1, run1) = started(first)[0], (s2, run2) = started(first)[1]
        machine.finish(run: run1, finished(s1, run: run1))
        let afterFirst = actions(&machine, at: t0)
        #expect(started(afterFirst).map(\.shard.record.shard) == ["s000003"])
        #expect(published(afterFirst) == nil, "s000001 waits for company while others run")
        let due = try #require(machine.nextDeadline())
        #expect(due > t0 && due <= .now + machine.publishLinger)
        let lingered = actions(&machine, at: due)
        #expect(published(lingered) == ["s000001"])
        #expect(machine.nextDeadline() == nil, "nothing is due while a transaction is in flight")

        let s3 = started(afterFirst)[0]
        machine.finish(run: run2, finished(s2, run: run2))
        machine.finish(run: s3.run, finished(s3.shard, run: s3.run))
        #expect(published(actions(&machine, at: due)) == nil, "one transaction at a time")
        machine.published(try #require(lingered.compactMap { if case .publish(let batch) = $0 { batch } else { nil } }.first))
        let rest = actions(&machine, at: due)
        #expect(published(rest) == ["s000002", "s000003"], "at once: nothing else runs")
        machine.published(rest.compactMap { if case .publish(let batch) = $0 { batch } else { nil } }[0])
        let idle = actions(&machine, at: due)
        guard case .settle(asked: false)? = idle.first else { Issue.record("\(idle)"); return }
        #expect(actions(&machine, at: due).isEmpty)
        machine.settled()
        #expect(machine.isIdle && actions(&machine, at: due).isEmpty)
    }

    @Test("released offsets are committed at most once a second, and only once something is committable")
    func offsetsPaced() {
        let t0 = ContinuousClock.now
        var machine = machine(0)
        machine.received(p0, offset: 0)
        machine.release(p0, offset: 0)
        #expect(actions(&machine, at: t0).count == 1)
        machine.offsetsCommitted()
        machine.received(p0, offset: 1)
        machine.received(p0, offset: 2)
        machine.release(p0, offset: 2)
        #expect(machine.nextDeadline() == t0 + WorkerMachine.offsetCommitInterval)
        #expect(actions(&machine, at: t0 + .milliseconds(500)).isEmpty, "within a second of the last commit")
        #expect(actions(&machine, at: t0 + .seconds(1)).isEmpty, "p0@1 still runs: nothing committable")
        #expect(machine.nextDeadline() == nil, "its transaction commits p0@2 with it")
    }

    @Test("the controller hears at once when the worker gets partitions or taken shards, publishes without partitions, or stops; soon when it goes idle")
    func heartbeatWanted() throws {
        var machine = WorkerMachine(slots: 1, holdLimit: 4)
        #expect(!machine.heartbeatWanted)
        let taken = QueuedShard(record: record(1), partition: p0, offset: 0)
        _ = machine.take([taken], express: false)
        #expect(machine.heartbeatWanted, "a warm-start take")
        machine.heartbeatWanted = false
        let start = try #require(started(actions(&machine, at: .now)).first)
        machine.finish(run: start.run, finished(start.shard, run: start.run))
        machine.published(try batch(&machine))
        #expect(machine.heartbeatWanted, "published while it owns no partitions: the warm start hands out more")
        machine.heartbeatWanted = false
        machine.idleBeatWanted = false
        machine.assign([p0])
        #expect(machine.heartbeatWanted)
        machine.heartbeatWanted = false
        receive(&machine, 2)
        receive(&machine, 4)
        for expectIdle in [false, true] {  // one slot: s000002, then s000004
            let shard = try #require(started(actions(&machine, at: .now)).first)
            machine.finish(run: shard.run, finished(shard.shard, run: shard.run))
            machine.published(try batch(&machine))
            #expect(machine.idleBeatWanted == expectIdle, "gone idle after publishing: soon, not at once")
            #expect(!machine.heartbeatWanted)
        }
        machine.stop(.cancelled)
        #expect(machine.heartbeatWanted)
    }
}
