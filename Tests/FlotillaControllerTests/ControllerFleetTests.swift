import FlotillaController
import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The controller with the local pod backend against a real broker. The "workers" are shell
/// scripts that only record their pid; the test publishes their heartbeats and acks.
@Suite("Controller fleet with local processes", .timeLimit(.minutes(2)))
struct ControllerFleetTests {
    func pids(_ folder: String, _ id: String) -> [Int32] {
        ((try? String(contentsOfFile: "\(folder)/\(id).pids", encoding: .utf8)) ?? "")
            .split(separator: "\n").compactMap { Int32($0) }
    }

    func waitFor(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test("Starts the fleet, restarts a kill -9'd worker under its id and re-enqueues its shard at once, scales, stops all at the end")
    func fleet() async throws {
        let fixture = try await BrokerFixture()
        let faults = FaultConfig(maxAttempts: 3, heartbeat: .milliseconds(500), workerTimeout: .seconds(5),
                                 shardTimeout: .seconds(60), speculative: false)
        let harness = try await JobHarness(fixture: fixture, shards: 2, faults: faults)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-fleet-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let script = "\(folder)/worker.sh"
        // Arguments: worker --worker-id ID [extra...]
        try """
            #!/bin/sh
            echo $$ >> "\(folder)/$3.pids"
            echo "args: $@"
            trap 'exit 0' TERM
            while true; do sleep 0.05; done
            """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let backend = try LocalPodBackend(executable: script, baseArguments: ["worker"], logDirectory: "\(folder)/logs",
                                          logger: fixture.logger)
        let service = ControllerService(
            options: ControllerOptions(job: harness.job, brokers: fixture.bootstrapServers,
                                       tickInterval: .milliseconds(100), stopGrace: .seconds(2)),
            backend: backend, logger: fixture.logger)
        let watcher = try await harness.reader([harness.topics.shards, harness.topics.control])
        async let outcome = service.runJob()

        #expect(try await waitFor { pids(folder, "w1").count == 1 }, "workers.min = 1 worker started")
        try await harness.controlRecord(ControlRecord(job: harness.job, target: "controller", command: .scale, workers: 5))
        #expect(try await waitFor { pids(folder, "w2").count == 1 }, "scaled up, clamped to workers.max = 2")
        try await Task.sleep(for: .milliseconds(300))
        #expect(pids(folder, "w3").isEmpty)
        let log = try String(contentsOfFile: backend.logFile(of: "w2"), encoding: .utf8)
        #expect(log.contains("args: worker --worker-id w2"))

        try await harness.heartbeat("w1", running: [(0, 0)], partitions: [0, 1])
        try await harness.heartbeat("w2", running: [(1, 0)], partitions: [2, 3])
        try await Task.sleep(for: .milliseconds(300))
        let victim = try #require(pids(folder, "w1").first)
        kill(victim, SIGKILL)
        let killedAt = ContinuousClock.now
        let moved = try await watcher.first(ShardRecord.self, topic: harness.topics.shards, timeout: .seconds(10)) { record, _ in
            record.shard == Fixtures.id(0) && record.attempt == 1
        }
        let elapsed = ContinuousClock.now - killedAt
        #expect(moved?.0.reason == .workerLost)
        #expect([2, 3].contains(moved?.1.partition ?? -1))
        #expect(elapsed < .seconds(2), "seen by the backend, well before workerTimeout (5 s): \(elapsed)")
        print("kill -9'd worker's shard re-enqueued after \(elapsed) (workerTimeout 5 s)")
        #expect(try await waitFor { pids(folder, "w1").count == 2 }, "restarted under the same id")
        #expect(service.board.status.workerRestarts == 1)

        try await harness.controlRecord(ControlRecord(job: harness.job, target: "controller", command: .scale, workers: 1))
        let drain = try await watcher.first(ControlRecord.self, topic: harness.topics.control, timeout: .seconds(5)) { control, _ in
            control.command == .drain
        }
        #expect(drain?.0.target == "w2", "the highest id drains")

        try await harness.ack(0, attempt: 1, worker: "w2")
        try await harness.ack(1, worker: "w2")
        let result = try #require(try await outcome)
        #expect(result.exitCode == 0)
        let all = pids(folder, "w1") + pids(folder, "w2")
        #expect(all.allSatisfy { kill($0, 0) != 0 }, "no worker process left")
    }
}
