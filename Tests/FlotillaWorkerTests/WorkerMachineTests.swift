import FlotillaCore
@testable import FlotillaWorker
import RdKafka
import Testing

/// The worker's rules alone: no broker, no predictor, no clock, no sleeps.
@Suite("WorkerMachine")
struct WorkerMachineTests {
    static let topic = "flotilla.j.shards"
    let p0 = TopicPartition(topic, 0)
    let p1 = TopicPartition(topic, 1)

    func record(_ index: Int, attempt: Int = 0) -> ShardRecord {
        ShardRecord(job: "j", shard: String(format: "s%06d", index), attempt: attempt,
                    source: .inline([InlineSample(id: "x\(index)", input: .int(Int64(index)))]), samples: 1, createdAt: 0)
    }

    /// A machine holding records 0..<count, alternating over p0 and p1 at offsets 0, 1, ...
    func machine(_ count: Int, slots: Int = 2, holdLimit: Int = 8) -> WorkerMachine {
        var machine = WorkerMachine(slots: slots, holdLimit: holdLimit, publishBatch: 4)
        machine.assign([p0, p1])
        for index in 0..<count { receive(&machine, index) }
        return machine
    }

    func receive(_ machine: inout WorkerMachine, _ index: Int, attempt: Int = 0) {
        let partition = index % 2 == 0 ? p0 : p1
        let offset = Int64(index / 2)
        machine.received(partition, offset: offset)
        machine.enqueue(QueuedShard(record: record(index, attempt: attempt), partition: partition, offset: offset))
    }

    /// Starts the next shard; fails the test when the machine does something else.
    @discardableResult
    func start(_ machine: inout WorkerMachine, skip: (ShardRecord) -> String? = { _ in nil }) -> (QueuedShard, String)? {
        let run = "run-\(machine.running.count)-\(machine.shardsDone)-\(machine.queue.count)"
        let next = machine.next(skipReason: skip, newRun: { run }, now: 1)
        guard case .start(let shard, let run) = next else { return nil }
        return (shard, run)
    }

    func finished(_ shard: QueuedShard, run: String, status: AckStatus = .done) -> FinishedShard {
        var results = ResultEntries(job: "j", shard: shard.record.shard, attempt: shard.record.attempt, run: run)
        results.appendOutput(id: "x", JSONBytes(.int(1)).bytes)
        return FinishedShard(partition: shard.partition, offset: shard.offset, results: results,
                             ack: AckRecord(job: "j", shard: shard.record.shard, attempt: shard.record.attempt, run: run,
                                            worker: "w1", samples: 1, status: status, startedAt: 0))
    }

    /// The next transaction's shards; fails the test when there is none.
    func batch(_ machine: inout WorkerMachine) throws -> [FinishedShard] {
        let next = machine.nextPublish(at: .now + .seconds(60))
        return try #require(next)
    }

    func committedOffsets(_ machine: WorkerMachine) -> [Int32: Int64] {
        Dictionary(uniqueKeysWithValues: machine.pendingOffsets().map { ($0.topicPartition.partition, $0.offset) })
    }

    @Test("starts at most `slots` shards; an express shard goes first and may use one slot more")
    func slotsAndExpress() throws {
        var machine = machine(4)
        #expect(start(&machine) != nil)
        #expect(start(&machine) != nil)
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .wait)
        let express = QueuedShard(record: record(9), partition: p1, offset: 40, express: true, taken: true)
        #expect(machine.take([express], express: true) == [express])
        #expect(machine.take([express], express: true).isEmpty, "already queued")
        let (shard, _) = try #require(start(&machine))
        #expect(shard == express)
        #expect(machine.running.count == 3)
    }

    @Test("room counts queued, running and unpublished shards beyond a batch; none while draining")
    func room() throws {
        var machine = machine(3, slots: 2, holdLimit: 8)
        #expect(machine.room == 5)
        for _ in 0..<2 {
            let (shard, run) = try #require(start(&machine))
            machine.finish(run: run, finished(shard, run: run))
        }
        #expect(machine.room == 7, "finished shards within a batch of 4 do not count")
        for _ in 0..<4 { receive(&machine, 10 + machine.queue.count) }
        let (shard, run) = try #require(start(&machine))
        machine.finish(run: run, finished(shard, run: run))
        let (other, otherRun) = try #require(start(&machine))
        machine.finish(run: otherRun, finished(other, run: otherRun))
        let (third, thirdRun) = try #require(start(&machine))
        machine.finish(run: thirdRun, finished(third, run: thirdRun))
        #expect(machine.room == 8 - 2 - 1, "two queued, five unpublished: one beyond the batch")
        machine.drain()
        #expect(machine.room == 0)
    }

    @Test("a skipped record is released and its offset committed; stale queued records are dropped")
    func skips() throws {
        var machine = machine(3)
        let next = machine.next(skipReason: { $0.shard == "s000000" ? "already done" : nil }, newRun: { "r" }, now: 1)
        guard case .skip(let shard, let reason) = next else { Issue.record("expected a skip, got \(next)"); return }
        #expect(shard.record.shard == "s000000" && reason == "already done")
        #expect(committedOffsets(machine) == [0: 1])
        #expect(machine.dropStale { $0.shard == "s000002" ? "superseded by attempt 1" : nil } == 1)
        #expect(machine.queue.map(\.record.shard) == ["s000001"])
        #expect(committedOffsets(machine) == [0: 2])
    }

    @Test("offsets commit only the contiguous finished prefix, in the transaction that publishes it")
    func offsetPrefix() throws {
        var machine = machine(4, slots: 4)
        var started: [(QueuedShard, String)] = []
        for _ in 0..<4 { started.append(try #require(start(&machine))) }
        // s000002 (p0 @ 1) finishes before s000000 (p0 @ 0): nothing of p0 may be committed yet.
        machine.finish(run: started[2].1, finished(started[2].0, run: started[2].1))
        let first = try batch(&machine)
        #expect(machine.offsetsToCommit(assumingPublished: first).isEmpty)
        machine.published(first)
        machine.finish(run: started[0].1, finished(started[0].0, run: started[0].1))
        let second = try batch(&machine)
        #expect(machine.offsetsToCommit(assumingPublished: second).map(\.offset) == [2])
        machine.published(second)
        #expect(machine.shardsDone == 2 && machine.samplesDone == 2)
        let report = machine.heartbeatReport()
        #expect(report.committed.map(\.shard) == ["s000002", "s000000"])
        #expect(report.inFlight.map(\.shard).sorted() == ["s000001", "s000003"])
        #expect(machine.heartbeatReport().committed.isEmpty, "the heartbeat clears what it reported")
    }

    @Test("revoke: queued records of the partition go, running ones are abandoned, finished ones are still published without their offsets")
    func revoke() throws {
        var machine = machine(6, slots: 3)
        let a = try #require(start(&machine))  // s000000 on p0
        let b = try #require(start(&machine))  // s000001 on p1
        let c = try #require(start(&machine))  // s000002 on p0
        machine.finish(run: a.1, finished(a.0, run: a.1))
        let express = QueuedShard(record: record(20), partition: p0, offset: 30, express: true, taken: true)
        _ = machine.take([express], express: true)
        machine.revoke([p0])
        #expect(machine.queue.map(\.record.shard) == ["s000020", "s000003", "s000005"], "p0's group records dropped, the express one kept")
        #expect(machine.isAbandoned(c.1))
        #expect(!machine.isAbandoned(b.1))
        #expect(!machine.assigned.contains(p0))
        let batch = try batch(&machine)
        #expect(batch.map(\.ack.shard) == ["s000000"], "finished work is published, not dropped")
        #expect(machine.offsetsToCommit(assumingPublished: batch).isEmpty, "p0 is not this worker's to commit any more")
        machine.published(batch)
        machine.finish(run: c.1, finished(c.0, run: c.1))
        #expect(machine.nextPublish(at: .now + .seconds(60)) == nil, "an abandoned execution publishes nothing")
    }

    @Test("a second copy of an attempt waits until the first is published, then is skipped; if the first fails it runs")
    func heldCopies() throws {
        var machine = machine(1, slots: 2)
        let first = try #require(start(&machine))
        let express = QueuedShard(record: record(0), partition: p1, offset: 7, express: true, taken: true)
        #expect(machine.take([express], express: true).isEmpty, "a take of an attempt running here is refused")
        // The group delivers the same attempt again (its record re-read after a rebalance).
        let copy = QueuedShard(record: record(0), partition: p1, offset: 7)
        machine.received(p1, offset: 7)
        machine.enqueue(copy)
        #expect(start(&machine) == nil)
        #expect(machine.held == [copy] && machine.queue.isEmpty)
        // The first copy is abandoned: the held one runs.
        machine.finish(run: first.1, nil)
        let (again, run) = try #require(start(&machine))
        #expect(again == copy)
        // While it waits to be published, a further copy is set aside, then skipped as done.
        machine.finish(run: run, finished(again, run: run))
        let late = QueuedShard(record: record(0), partition: p0, offset: 0)
        machine.enqueue(late)
        #expect(start(&machine) == nil && machine.held == [late])
        machine.published(try batch(&machine))
        #expect(machine.queue == [late])
        let next = machine.next(skipReason: { _ in "already done" }, newRun: { "r" }, now: 1)
        #expect(next == .skip(late, reason: "already done"))
        #expect(committedOffsets(machine) == [0: 1], "p1 @ 7 went with the transaction; the skipped p0 @ 0 waits for the next commit")
    }

    @Test("drain: running shards finish and are published, queued group records are let go unrun (never committed), taken ones still run, then the worker stops")
    func drain() throws {
        var machine = machine(3)
        let (shard, run) = try #require(start(&machine))
        let express = QueuedShard(record: record(9), partition: p1, offset: 30, express: true, taken: true)
        _ = machine.take([express], express: true)
        machine.drain()
        #expect(machine.queue.map(\.record.shard) == ["s000009"], "the group's records go back to the group")
        #expect(machine.heartbeatReport().queued == ["s000009"])
        let next = machine.next(skipReason: { _ in nil }, newRun: { "taken" }, now: 1)
        guard case .start(let started, let startedRun) = next else { Issue.record("\(next)"); return }
        #expect(started.record.shard == "s000009" && started.taken && startedRun == "taken", "a shard the controller handed over still runs")
        machine.finish(run: "taken", nil)
        #expect(committedOffsets(machine).isEmpty, "the let-go records' offsets are never committed")
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .wait)
        #expect(!machine.isAbandoned(run))
        machine.finish(run: run, finished(shard, run: run))
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .wait, "its results are not published yet")
        let batch = try batch(&machine)
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .wait, "in a transaction now")
        machine.published(batch)
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .stop)
        #expect(machine.exit == .finished("drained"))
        #expect(machine.isIdle)
    }

    @Test("stop and cancel abandon running shards at once; the first reason stays; finished shards are still published")
    func stopAndCancel() throws {
        var machine = machine(3)
        let a = try #require(start(&machine))
        let b = try #require(start(&machine))
        machine.finish(run: a.1, finished(a.0, run: a.1))
        machine.stop(.cancelled)
        machine.stop(.finished("stopped"))
        #expect(machine.exit == .cancelled)
        #expect(machine.isAbandoned(b.1))
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .stop)
        #expect(machine.abandonedRuns == [b.1], "every execution still running stops")
        #expect(!machine.isIdle, "a finished shard is left to publish")
        let batch = try batch(&machine)
        machine.published(batch)
        #expect(!machine.isIdle, "until the abandoned execution has ended")
        machine.finish(run: b.1, nil)
        #expect(machine.isIdle)
    }

    @Test("abandon stops the named attempt only and releases its record")
    func abandon() throws {
        var machine = machine(2)
        let a = try #require(start(&machine))
        let b = try #require(start(&machine))
        let otherAttempt = machine.abandon(shard: a.0.record.shard, attempt: 5)
        let thisAttempt = machine.abandon(shard: a.0.record.shard, attempt: 0)
        #expect(!otherAttempt && thisAttempt)
        #expect(machine.isAbandoned(a.1) && !machine.isAbandoned(b.1))
        #expect(committedOffsets(machine) == [0: 1])
    }

    @Test("a finished shard waits up to publishLinger for others while more run; at once when nothing else runs, a batch is full, or draining")
    func publishLinger() throws {
        var machine = machine(6, slots: 4)
        let started = (0..<4).compactMap { _ in start(&machine) }
        let t0 = ContinuousClock.now
        var first = finished(started[0].0, run: started[0].1)
        first.finishedAt = t0
        machine.finish(run: started[0].1, first)
        #expect(machine.nextPublish(at: t0 + .milliseconds(10)) == nil, "others run: it waits for company")
        #expect(machine.publishDue == t0 + machine.publishLinger)
        let dueBatch = machine.nextPublish(at: t0 + machine.publishLinger)
        let due = try #require(dueBatch)
        #expect(due.map(\.ack.shard) == ["s000000"], "the linger is over")
        machine.published(due)
        for (shard, run) in started[1...3] {
            var done = finished(shard, run: run)
            done.finishedAt = t0
            machine.finish(run: run, done)
        }
        let aloneBatch = machine.nextPublish(at: t0)
        let alone = try #require(aloneBatch, "nothing else runs: nothing to wait for")
        #expect(alone.count == 3)
        machine.published(alone)
        let more = (0..<2).compactMap { _ in start(&machine) }
        var last = finished(more[0].0, run: more[0].1)
        last.finishedAt = t0
        machine.finish(run: more[0].1, last)
        #expect(machine.nextPublish(at: t0) == nil)
        machine.drain()
        #expect(machine.nextPublish(at: t0)?.count == 1, "a draining worker does not wait")
    }

    /// A machine of 4 slots with `publishBytes`, 6 records received and 4 of them started.
    func fourRunning(publishBytes: Int) -> (WorkerMachine, [(QueuedShard, String)]) {
        var machine = WorkerMachine(slots: 4, holdLimit: 8, publishBatch: 64, publishBytes: publishBytes)
        machine.assign([p0, p1])
        for index in 0..<6 { receive(&machine, index) }
        let started = (0..<4).compactMap { _ in start(&machine) }
        return (machine, started)
    }

    /// `shard` finished as `run` with one result whose output is a string of `size` bytes.
    func finished(_ shard: QueuedShard, run: String, outputSize size: Int) -> FinishedShard {
        let done = finished(shard, run: run)
        var results = ResultEntries(job: "j", shard: shard.record.shard, attempt: 0, run: run)
        results.appendOutput(id: "x", JSONBytes(.string(String(repeating: "a", count: size))).bytes)
        return FinishedShard(partition: done.partition, offset: done.offset, results: results, ack: done.ack)
    }

    @Test("a transaction holds at most publishBytes of results (a larger shard alone); over them unpublished, the intake pauses")
    func publishBytes() throws {
        var (machine, started) = fourRunning(publishBytes: 300)
        let outputs = [30, 30, 200, 100]  // each output's bytes; a result counts 30 more (its entry's JSON, where it ends)
        for ((shard, run), size) in zip(started, outputs) {
            machine.finish(run: run, finished(shard, run: run, outputSize: size))
        }
        #expect(machine.unpublishedBytes > 300)
        #expect(machine.room == 0, "over the budget unpublished: no more taken")
        let first = try batch(&machine)
        #expect(first.count == 2, "two small shards fit, the large one would not")
        machine.published(first)
        let second = try batch(&machine)
        #expect(second.map(\.results.records[0].outputBytes?.bytes.count) == [202], "the large shard travels alone")
        machine.published(second)
        #expect(try batch(&machine).count == 1)
        #expect(machine.room > 0)
    }

    @Test("finished shards holding half of publishBytes go at once, while others run, so the next half fills while they commit")
    func publishHalfBytes() throws {
        var (machine, started) = fourRunning(publishBytes: 400)
        let t0 = ContinuousClock.now
        func finish(_ position: Int) {
            let (shard, run) = started[position]
            var done = finished(shard, run: run, outputSize: 100)
            done.finishedAt = t0
            machine.finish(run: run, done)
        }
        finish(0)
        #expect(machine.unpublishedBytes < 200)
        #expect(machine.nextPublish(at: t0) == nil, "under half the bytes, others running: it waits for company")
        finish(1)
        #expect(machine.unpublishedBytes >= 200 && machine.unpublishedBytes < 400)
        let next = machine.nextPublish(at: t0)
        let batch = try #require(next, "half the bytes: no linger")
        #expect(batch.count == 2)
        #expect(machine.room > 0, "the intake still has room while they commit")
    }

    @Test("a transaction retried after a rebalance: the same shards, and only the offsets still owned")
    func publishRetry() throws {
        var machine = machine(2)
        let a = try #require(start(&machine))  // s000000 on p0
        let b = try #require(start(&machine))  // s000001 on p1
        machine.finish(run: a.1, finished(a.0, run: a.1))
        machine.finish(run: b.1, finished(b.0, run: b.1))
        let batch = try batch(&machine)
        #expect(batch.map(\.ack.shard) == ["s000000", "s000001"])
        #expect(machine.nextPublish(at: .now + .seconds(60)) == nil, "one transaction at a time")
        #expect(Set(machine.offsetsToCommit(assumingPublished: batch).map(\.topicPartition.partition)) == [0, 1])
        // The first try fails; a rebalance takes p1 before the retry.
        machine.revoke([p1])
        #expect(machine.offsetsToCommit(assumingPublished: batch).map(\.topicPartition.partition) == [0],
                "the retry commits no offset of a partition this worker lost")
        #expect(machine.heartbeatReport().inFlight.map(\.shard).sorted() == ["s000000", "s000001"], "still in flight")
        machine.published(batch)
        #expect(machine.heartbeatReport().inFlight.isEmpty)
        #expect(machine.shardsDone == 2)
    }

    @Test("a fatal error stops the machine with the failure as its exit; a later drain changes nothing")
    func fatal() {
        var machine = machine(1)
        machine.stop(.finished("failed"))
        machine.drain()
        #expect(machine.exit == .finished("failed"))
        #expect(machine.room == 0)
        #expect(machine.next(skipReason: { _ in nil }, newRun: { "r" }, now: 1) == .stop)
    }

    @Test("settle: wanted once idle after a publish (not while work is held), or when the controller asks; a settle clears both")
    func settle() throws {
        var machine = machine(2, slots: 1)
        #expect(!machine.wantsSettle, "nothing published yet")
        let (shard, run) = try #require(start(&machine))
        machine.finish(run: run, finished(shard, run: run))
        machine.published(try batch(&machine))
        #expect(!machine.wantsSettle, "s000001 still waits to run")
        let (second, secondRun) = try #require(start(&machine))
        machine.finish(run: secondRun, finished(second, run: secondRun))
        machine.published(try batch(&machine))
        #expect(machine.wantsSettle, "idle after publishing")
        machine.settled()
        #expect(!machine.wantsSettle && !machine.settleAsked)
        machine.askSettle()
        #expect(machine.wantsSettle && machine.settleAsked, "asked by the controller, even with nothing new published")
        machine.settled()
        #expect(!machine.wantsSettle)
    }
}

/// Where a worker's devices come from, and the check that its stages' smallest pools fit.
@Suite("Worker devices")
struct WorkerDeviceTests {
    func stage(_ name: String, devices: Int, processes: Int = 1) -> StageConfig {
        var stage = StageConfig(name: name, predictor: .command(["python3", "p.py"]), processes: ProcessRange(min: processes, max: processes))
        stage.devices = devices
        return stage
    }

    @Test("--devices wins over CUDA_VISIBLE_DEVICES; too few devices is a start failure naming the stages")
    func sources() throws {
        var options = WorkerOptions(job: "j", workerID: "w1", brokers: "b")
        let fromEnvironment = try WorkerRuntime.deviceAllocator(options: options, stages: [stage("a", devices: 1)],
                                                                environment: ["CUDA_VISIBLE_DEVICES": "2, 3"])
        #expect(fromEnvironment.devices == ["2", "3"])
        options.devices = ["0", "1", "2", "3"]
        let given = try WorkerRuntime.deviceAllocator(options: options, stages: [stage("a", devices: 2, processes: 2)],
                                                      environment: ["CUDA_VISIBLE_DEVICES": "7"])
        #expect(given.devices == ["0", "1", "2", "3"])
        let error = #expect(throws: FlotillaError.self) {
            try WorkerRuntime.deviceAllocator(options: options, stages: [stage("a", devices: 2, processes: 2), stage("b", devices: 1)], environment: [:])
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message == "the stages need 5 device(s) for their smallest pools (a 2 × 2, b 1 × 1); this worker has 4 (0,1,2,3)")
        options.devices = nil
        #expect(try WorkerRuntime.deviceAllocator(options: options, stages: [stage("cpu", devices: 0, processes: 4)], environment: [:]).devices.isEmpty)
    }
}
