import FlotillaController
import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// The controller against a real embedded broker; the test plays the workers with hand-made
/// heartbeats and acks.
@Suite("Controller against a real broker", .timeLimit(.minutes(3)), .serialized)
struct ControllerIntegrationTests {
    static let faults = FaultConfig(maxAttempts: 2, heartbeat: .milliseconds(250), workerTimeout: .seconds(3),
                                    shardTimeout: .seconds(60), speculative: false)

    func controller(_ harness: JobHarness, http: Bool = false) -> ControllerService {
        ControllerService(
            options: ControllerOptions(job: harness.job, brokers: harness.fixture.bootstrapServers,
                                       tickInterval: .milliseconds(100), manifestTimeout: .seconds(20), httpPort: http ? 0 : nil),
            backend: ExternalPodBackend(), logger: harness.fixture.logger)
    }

    /// Heartbeats of one worker every 250 ms until cancelled.
    func beating(_ harness: JobHarness, _ worker: String, running: [(Int, Int)], queued: [Int] = [], partitions: [Int]) -> Task<Void, Never> {
        let running = running.map { [$0.0, $0.1] }
        return Task {
            while !Task.isCancelled {
                try? await harness.heartbeat(worker, running: running.map { ($0[0], $0[1]) }, queued: queued, partitions: partitions)
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
    }

    @Test("Lost worker's shard re-enqueued within workerTimeout + 1 s; failed shard dead-lettered after maxAttempts; job completes with 3")
    func lostFailedComplete() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 4, faults: Self.faults)
        let service = controller(harness, http: true)
        let watcher = try await harness.reader([harness.topics.shards, harness.topics.control, harness.topics.dlq, harness.topics.jobs])
        async let outcome = service.runJob()

        // Acks of s1 and s2 first: what follows does not depend on them, even if a loaded machine
        // delays a heartbeat long enough for the controller to think a worker was lost.
        try await harness.ack(1, worker: "w2")
        try await harness.ack(2, worker: "w2")
        let w2 = beating(harness, "w2", running: [(2, 0)], partitions: [2, 3])
        defer { w2.cancel() }
        let w1 = beating(harness, "w1", running: [(0, 0)], partitions: [0, 1])
        try await Task.sleep(for: .seconds(2))
        w1.cancel()
        _ = await w1.value
        let silentSince = ContinuousClock.now

        let moved = try await watcher.first(ShardRecord.self, topic: harness.topics.shards, timeout: .seconds(15)) { record, _ in
            record.shard == Fixtures.id(0) && record.attempt == 1
        }
        let elapsed = ContinuousClock.now - silentSince
        let (record, message) = try #require(moved)
        #expect(record.reason == .workerLost)
        #expect([2, 3].contains(message.partition), "to a partition of the live worker")
        #expect(elapsed < Self.faults.workerTimeout + .seconds(1), "within workerTimeout + 1 s, took \(elapsed)")
        print("lost worker's shard re-enqueued \(elapsed) after its last heartbeat (workerTimeout \(Self.faults.workerTimeout))")

        // The status server shows it while the job runs.
        let address = try #require(service.httpAddress)
        let status = try await HTTPTestClient.get("\(address)/status")
        let decoded = try JSONDecoder().decode(ControllerStatus.self, from: Data(status.body.utf8))
        #expect(decoded.state == "running")
        #expect(decoded.workers.first { $0.id == "w1" }?.lost == true)
        #expect(decoded.reEnqueues["worker-lost"] == 1)
        #expect(try await HTTPTestClient.get("\(address)/metrics").body.contains("reason=\"worker-lost\"} 1"))

        try await harness.ack(0, attempt: 1, worker: "w2")
        try await harness.ack(3, worker: "w2", status: .failed, error: "boom")
        let retried = try await watcher.first(ShardRecord.self, topic: harness.topics.shards, timeout: .seconds(10)) { record, _ in
            record.shard == Fixtures.id(3) && record.attempt == 1
        }
        #expect(retried?.0.reason == .retry)
        try await harness.ack(3, attempt: 1, worker: "w2", status: .failed, error: "boom again")
        let letter = try await watcher.first(DeadLetterRecord.self, topic: harness.topics.dlq, timeout: .seconds(10)) { record, _ in
            record.shard == Fixtures.id(3)
        }
        #expect(letter?.0.reason.contains("boom again") == true)
        #expect(letter?.0.from == "controller")

        let result = try #require(try await outcome)
        #expect(result.exitCode == 3)
        #expect(result.summary.done == 3 && result.summary.dead == 1 && result.summary.shards == 4)
        #expect(result.summary.reEnqueued == 2)
        // Fresh readers: the watcher skipped records of other topics while it waited.
        let final = try await harness.reader([harness.topics.jobs]).first(JobManifest.self, topic: harness.topics.jobs, timeout: .seconds(5)) { manifest, _ in
            manifest.job == harness.job && manifest.status == .done
        }
        #expect(final?.0.summary?.dead == 1)
        let stop = try await harness.reader([harness.topics.control]).first(ControlRecord.self, topic: harness.topics.control, timeout: .seconds(5)) { control, _ in
            control.command == .stop && control.target == "*"
        }
        #expect(stop != nil)
    }

    @Test("A controller stopped mid-job and started again repeats no finished shard, then completes")
    func restartReplays() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 4, faults: Self.faults)
        let w1 = beating(harness, "w1", running: [(2, 0)], partitions: [0, 1, 2, 3])
        defer { w1.cancel() }

        let first = controller(harness)
        let firstRun = Task { try await first.runJob() }
        try await harness.ack(0, worker: "w1")
        try await harness.ack(1, worker: "w1")
        for _ in 0..<200 where first.board.status.shards["done"] != 2 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(first.board.status.shards["done"] == 2)
        firstRun.cancel()  // the controller goes away mid-job
        #expect(try await firstRun.value == nil)

        let second = controller(harness)
        async let outcome = second.runJob()
        for _ in 0..<200 where second.board.status.state != "running" { try await Task.sleep(for: .milliseconds(50)) }
        #expect(second.board.status.shards["done"] == 2, "rebuilt from the acks topic")
        try await harness.ack(2, worker: "w1")
        try await harness.ack(3, worker: "w1")
        let result = try #require(try await outcome)
        #expect(result.exitCode == 0)
        #expect(result.summary.done == 4 && result.summary.reEnqueued == 0 && result.summary.duplicates == 0)

        let reader = try await harness.reader([harness.topics.shards])
        let records = try await reader.collect(timeout: .seconds(3)) { $0.count > 4 }
        #expect(records.count == 4, "no shard was published again")

        // A third controller finds the job done and returns at once.
        let third = try #require(try await controller(harness).runJob())
        #expect(third.summary.done == 4)
    }

    @Test("A cancel command ends the run as cancelled and marks the manifest")
    func cancel() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 2, faults: Self.faults)
        let service = controller(harness)
        async let outcome = service.runJob()
        for _ in 0..<200 where service.board.status.state != "running" { try await Task.sleep(for: .milliseconds(50)) }
        try await harness.controlRecord(ControlRecord(job: harness.job, target: "*", command: .cancel, reason: "test cancel"))
        let result = try #require(try await outcome)
        #expect(result == .cancelled(result.summary))
        #expect(result.exitCode == 1)
        let reader = try await harness.reader([harness.topics.jobs])
        let manifest = try await reader.first(JobManifest.self, topic: harness.topics.jobs, timeout: .seconds(5)) { manifest, _ in
            manifest.job == harness.job && manifest.status == .cancelled
        }
        #expect(manifest != nil)
    }

    @Test("A job that was never submitted is reported clearly")
    func missingJob() async throws {
        let fixture = try await BrokerFixture()
        let service = ControllerService(
            options: ControllerOptions(job: "no-such-job", brokers: fixture.bootstrapServers, manifestTimeout: .seconds(2)),
            backend: ExternalPodBackend(), logger: fixture.logger)
        let error = await #expect(throws: FlotillaError.self) { _ = try await service.runJob() }
        #expect(error?.message.contains("submit") == true)
    }
}
