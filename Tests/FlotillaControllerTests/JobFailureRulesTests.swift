@testable import FlotillaController
import FlotillaCore
import Testing

/// When a job stops as failed: workers that cannot start (`FleetPlanner`), and the error budget (`ShardLedger`).
@Suite("Job failure rules")
struct JobFailureRulesTests {
    typealias F = Fixtures

    private func fleet(workers: Int = 2) -> FleetPlanner {
        FleetPlanner(config: FleetConfig(min: workers, max: workers), requested: nil)
    }

    @Test("Three permanent start failures in a row fail the job with the last worker's own message")
    func startFailures() {
        var fleet = fleet()
        let broken = WorkerFailure(message: "stage 'classify' cannot start: no such file", permanent: true)
        fleet.failed("w1", broken, now: 1_000)
        fleet.failed("w2", broken, now: 1_010)
        #expect(fleet.cannotStart == nil)
        fleet.exited("w2", status: 1, now: 1_020)
        #expect(fleet.lastError?.message == broken.message, "an exit right after a report does not hide the report")
        fleet.failed("w1", broken, now: 1_600)
        let failure = fleet.cannotStart
        #expect(failure?.kind == .predictorStart)
        #expect(failure?.message.contains("(w1) said: stage 'classify' cannot start: no such file") == true, "\(String(describing: failure))")
        #expect(failure?.exitCode == 2)
    }

    @Test("A worker running well in between resets the count; failures that may pass (Kafka) never count")
    func resets() {
        var fleet = fleet()
        let broken = WorkerFailure(message: "predictor crashed on import", permanent: true)
        fleet.failed("w1", broken, now: 1_000)
        fleet.failed("w2", broken, now: 1_000)
        fleet.running()
        fleet.failed("w1", broken, now: 2_000)
        fleet.failed("w1", broken, now: 3_000)
        #expect(fleet.cannotStart == nil, "w2 ran in between: a machine-local problem, not the job's")
        for time in 4_000..<4_010 {
            fleet.failed("w2", WorkerFailure(message: "cannot reach the broker", permanent: false), now: Int64(time))
        }
        #expect(fleet.cannotStart == nil)
        #expect(fleet.lastError?.message == "cannot reach the broker", "still shown while the fleet retries")
    }

    @Test("An exit without a report is shown with its status")
    func exitShown() {
        var fleet = fleet()
        fleet.exited("w1", status: 137, now: 5_000)
        #expect(fleet.lastError?.message == "worker w1 exited with status 137")
        #expect(fleet.cannotStart == nil, "a crash alone is restarted with backoff, not a job failure")
    }

    @Test("--workers widens workers.min...max to include it")
    func requestedWorkers() {
        let more = FleetPlanner(config: FleetConfig(min: 1, max: 2), requested: 3)
        #expect(more.desired == 3 && more.max == 3 && more.min == 1)
        let fewer = FleetPlanner(config: FleetConfig(min: 2, max: 4), requested: 1)
        #expect(fewer.desired == 1 && fewer.min == 1 && fewer.max == 4)
        let none = FleetPlanner(config: FleetConfig(min: 2, max: 4), requested: nil)
        #expect(none.desired == 2)
    }

    private func ack(_ index: Int, errors: Int, message: String = "classify: ValueError: bad") -> AckRecord {
        var ack = F.ack(index, worker: "w1")
        ack.samples = 10
        ack.errorSamples = errors
        ack.errors = errors > 0 ? [ErrorCount(message: message, count: errors)] : nil
        return ack
    }

    private func ledger(shards: Int, maxErrorRate: Double = 0.5) -> ShardLedger {
        var settings = F.settings()
        settings.maxErrorRate = maxErrorRate
        var ledger = ShardLedger(job: F.job, settings: settings)
        let config = JobConfig(job: F.job, inputs: [.inline([])], stages: [StageConfig(name: "echo", predictor: .builtin("echo"))],
                               baseDirectory: "/tmp")
        ledger.apply(manifest: JobManifest(config: config, shards: shards, samples: shards * 10, createdAt: 0))
        for index in 0..<shards { ledger.apply(shard: F.shard(index), partition: 0, offset: Int64(index)) }
        return ledger
    }

    @Test("The error budget is judged after 1 000 samples: 60 % failed stops a large job, 40 % does not")
    func errorBudget() {
        var ledger = ledger(shards: 1_000)
        for index in 0..<99 { ledger.apply(ack: ack(index, errors: 6)) }
        #expect(ledger.errorBudgetFailure == nil, "990 samples are too few to judge")
        ledger.apply(ack: ack(99, errors: 6))
        let failure = ledger.errorBudgetFailure
        #expect(failure?.kind == .errorBudget && failure?.exitCode == 4)
        #expect(failure?.message == "600 of 1000 samples failed (60 %), more than faults.maxErrorRate allows (50 %)", "\(String(describing: failure))")

        var healthy = self.ledger(shards: 1_000)
        for index in 0..<200 { healthy.apply(ack: ack(index, errors: 4)) }
        #expect(healthy.errorBudgetFailure == nil)
        #expect(healthy.summary(now: 1).topErrors == [ErrorCount(message: "classify: ValueError: bad", count: 800)])
    }

    @Test("A small job is judged when complete; maxErrorRate 1 turns the budget off")
    func smallJobAndOff() {
        var ledger = ledger(shards: 3)
        ledger.apply(ack: ack(0, errors: 10))
        ledger.apply(ack: ack(1, errors: 10))
        #expect(ledger.errorBudgetFailure == nil, "20 of 30 samples: not judged before the whole job is done")
        ledger.apply(ack: ack(2, errors: 0))
        #expect(ledger.summary(now: 1).failure?.kind == .errorBudget, "20 of 30 failed")
        var off = self.ledger(shards: 2, maxErrorRate: 1)
        off.apply(ack: ack(0, errors: 10))
        off.apply(ack: ack(1, errors: 10))
        #expect(off.errorBudgetFailure == nil)
    }

    @Test("Errors reported by committed heartbeats count before their acks are visible")
    func committedErrors() {
        var ledger = ledger(shards: 100)
        let committed = (0..<100).map { CommittedShard(shard: F.id($0), attempt: 0, run: "r\($0)", samples: 10, errorSamples: 10) }
        ledger.apply(heartbeat: HeartbeatRecord(job: F.job, worker: "w1", host: "h", pid: 1, time: 1_000, partitions: [0],
                                                committed: committed), receivedAt: 1_000)
        #expect(ledger.failedSamplesDone == 1_000)
        #expect(ledger.errorBudgetFailure?.kind == .errorBudget)
    }

    @Test("ErrorCount.top: most common first, ties by text, messages cut")
    func topErrors() {
        let long = String(repeating: "x", count: 1_000)
        let top = ErrorCount.top([("b", 2), ("a", 2), ("c", 5), (long, 1), ("b", 1)], limit: 3)
        #expect(top == [ErrorCount(message: "c", count: 5), ErrorCount(message: "b", count: 3), ErrorCount(message: "a", count: 2)])
        #expect(ErrorCount.top([(long, 1)], limit: 1)[0].message.count == ErrorCount.maxMessageLength)
    }

    @Test("Completion needs every submitted shard id: a foreign dead shard does not stand in for a missing one")
    func completionByIDs() {
        var ledger = ShardLedger(job: F.job, settings: F.settings())
        ledger.apply(manifest: F.manifest(shards: 3))
        for index in 0..<2 {
            ledger.apply(shard: F.shard(index), partition: 0, offset: Int64(index))
            ledger.apply(ack: F.ack(index, worker: "w1"))
        }
        ledger.applyUndecodableShard("s999999", reason: "garbage")
        #expect(!ledger.isComplete, "s000002 was never seen")
        ledger.apply(shard: F.shard(2), partition: 0, offset: 2)
        ledger.apply(ack: F.ack(2, worker: "w1"))
        #expect(ledger.isComplete)
    }
}
