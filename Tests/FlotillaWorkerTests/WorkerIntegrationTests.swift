import FlotillaCore
import FlotillaTestSupport
import FlotillaWorker
import Foundation
import Logging
import Testing

@Suite("Worker against a real broker and real predictor processes", .serialized, .timeLimit(.minutes(4)))
struct WorkerIntegrationTests {
    static let fixtures = "\(CommandRunner.repositoryRoot)/python/tests/fixtures"
    static let env = "env: { PYTHONPATH: \(CommandRunner.repositoryRoot)/python }"

    /// Runs `count` in-process workers until every shard is acked, then stops them.
    func runWorkers(_ harness: JobHarness, count: Int, timeout: Duration = .seconds(120),
                    alsoWaitFor extra: @escaping @Sendable () async throws -> Bool = { true }) async throws -> Bool {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                let worker = Worker(options: harness.workerOptions("w\(index)"), logger: harness.fixture.logger)
                group.addTask { _ = try await worker.runUntilDone() }
            }
            var complete = try await harness.waitForCompletion(timeout: timeout)
            let deadline = ContinuousClock.now + timeout
            while complete, try await !extra() {
                guard ContinuousClock.now < deadline else { complete = false; break }
                try await Task.sleep(for: .milliseconds(200))
            }
            try await harness.stopWorkers()
            try await group.waitForAll()
            return complete
        }
    }

    func expectEverySampleOnce(_ harness: JobHarness, errors expectedErrors: Set<String> = []) async throws {
        let results = try await harness.readerResults()
        #expect(results.count == harness.samples.count, "one result per sample for the reader")
        #expect(Set(results.map(\.id)) == Set(harness.samples.map(\.id)))
        let errors = Set(results.filter { $0.error != nil }.map(\.id))
        #expect(errors == expectedErrors)
        for result in results where result.error == nil {
            let sample = harness.samples.first { $0.id == result.id }!
            #expect(result.output?["echo"] == sample.input || result.output == sample.input, "output of \(result.id)")
        }
    }

    @Test("2 000 samples through 2 workers: exactly one result per sample for a read_committed reader")
    func twoWorkersExactlyOnce() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, samples: 2000, samplesPerShard: 50, stageYAML: """
              - name: echo
                predictor: [python3, \(Self.fixtures)/identity.py]
                batch: 16
                processes: { min: 1, max: 2 }
                \(Self.env)
            """)
        #expect(try await runWorkers(harness, count: 2))
        try await expectEverySampleOnce(harness)
        let acks = try await harness.read(harness.config.topics.acks).compactMap { try? RecordCodec.shared.decode(AckRecord.self, from: $0.value) }
        #expect(Set(acks.map(\.worker)).count == 2, "both workers took shards")
    }

    @Test("Predictor faults: SIGKILL mid-batch, a hang and junk output leave every sample answered", arguments: ["crash", "hang", "junk"])
    func predictorFaults(fault: String) async throws {
        let fixture = try await BrokerFixture()
        let marker = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(fault)-\(UUID().uuidString)").path
        let argv = switch fault {
        case "crash": "[python3, \(Self.fixtures)/faults.py, --crash-once, \(marker)]"
        case "hang": "[python3, \(Self.fixtures)/faults.py, --hang-once, \(marker)]"
        default: "[python3, \(Self.fixtures)/junk.py, --junk-once, \(marker)]"
        }
        let harness = try await JobHarness(fixture: fixture, samples: 300, samplesPerShard: 50, stageYAML: """
              - name: echo
                predictor: \(argv)
                batch: 10
                timeout: 2s
                processes: { min: 2, max: 2 }
                \(Self.env)
            """)
        #expect(try await runWorkers(harness, count: 1))
        #expect(FileManager.default.fileExists(atPath: marker), "the fault was triggered")
        try await expectEverySampleOnce(harness)
    }

    @Test("A poison sample gives one error result and no crash")
    func poisonSample() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, samples: 120, samplesPerShard: 40, stageYAML: """
              - name: echo
                predictor: [python3, \(Self.fixtures)/faults.py, --reject-poison]
                batch: 8
                \(Self.env)
            """, input: { $0 == 57 ? .object(["poison": .bool(true)]) : .object(["n": .int(Int64($0))]) })
        #expect(try await runWorkers(harness, count: 1))
        try await expectEverySampleOnce(harness, errors: ["sample-57"])
    }

    @Test("Garbage in the shards topic is dead-lettered with the reason, and the job still completes")
    func garbageRecord() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, samples: 40, samplesPerShard: 10, stageYAML: """
              - name: echo
                builtin: identity
            """)
        let producer = try fixture.producer()
        try await producer.send(RdKafkaMessage.raw(topic: harness.config.topics.shards, value: Array("not json at all".utf8)))
        try await producer.send(RdKafkaMessage.raw(topic: harness.config.topics.shards, value: Array(#"{"v":7,"type":"shard"}"#.utf8)))
        // The garbage sits behind the real shards of partition 0: wait for its dead letters too.
        let dlq = harness.config.topics.dlq
        #expect(try await runWorkers(harness, count: 1) { try await harness.read(dlq).count >= 2 })
        try await expectEverySampleOnce(harness)
        let dead = try await harness.read(harness.config.topics.dlq).compactMap { try? RecordCodec.shared.decode(DeadLetterRecord.self, from: $0.value) }
        #expect(dead.count == 2)
        #expect(dead.contains { $0.raw == "not json at all" && $0.reason.contains("not JSON") })
        #expect(dead.contains { $0.reason.contains("version 7") })
    }
}

import RdKafka

enum RdKafkaMessage {
    static func raw(topic: String, value: [UInt8]) -> OutgoingMessage {
        OutgoingMessage(topic: topic, partition: 0, key: "garbage", value: value)
    }
}
