import FlotillaCore
import FlotillaSpec
import FlotillaTestSupport
import FlotillaWorker
import Foundation
import RdKafka

/// Publishes a job straight to a real broker (topics, manifest, inline shards), runs workers
/// in-process, and reads the outcome back with the documented reader rule.
struct JobHarness {
    let fixture: BrokerFixture
    let config: JobConfig
    let samples: [InlineSample]
    let shardCount: Int

    /// - Parameter stageYAML: the `stages:` entries (YAML, indented by 2).
    init(fixture: BrokerFixture, samples: Int, samplesPerShard: Int, stageYAML: String, extraYAML: String = "",
         input: (Int) -> JSONValue = { .object(["n": .int(Int64($0))]) }) async throws {
        self.fixture = fixture
        let job = "job-\(UUID().uuidString.prefix(8).lowercased())"
        let yaml = """
            job: \(job)
            inputs:
              - inline: [{id: placeholder, input: 0}]
            shard: { samples: \(samplesPerShard) }
            stages:
            \(stageYAML)
            workers: { min: 1, max: 2 }
            faults: { maxAttempts: 3, heartbeat: 500ms, workerTimeout: 5s, shardTimeout: 60s }
            \(extraYAML)
            """
        config = try JobSpecLoader.load(yaml: yaml, fileName: "job.yaml", baseDirectory: CommandRunner.repositoryRoot)
        self.samples = (0..<samples).map { InlineSample(id: "sample-\($0)", input: input($0)) }
        shardCount = (samples + samplesPerShard - 1) / samplesPerShard
        try await publish(samplesPerShard: samplesPerShard)
    }

    private func publish(samplesPerShard: Int) async throws {
        let topics = config.topics
        let partitions = Int32(config.shardPartitions)
        try await fixture.admin().createTopics(
            [TopicSpecification(name: topics.jobs, partitions: 1, configs: ["cleanup.policy": "compact"]),
             TopicSpecification(name: topics.shards, partitions: partitions)]
                + [topics.results, topics.acks, topics.heartbeats, topics.control, topics.dlq].map { TopicSpecification(name: $0, partitions: 1) })
        let producer = try fixture.producer()
        var messages: [OutgoingMessage] = []
        for index in 0..<shardCount {
            let chunk = Array(samples[(index * samplesPerShard)..<min(samples.count, (index + 1) * samplesPerShard)])
            let record = ShardRecord(job: config.job, shard: ShardRecord.shardID(index: index), source: .inline(chunk), samples: chunk.count)
            messages.append(OutgoingMessage(topic: topics.shards, partition: Int32(index) % partitions, key: record.shard,
                                            value: RecordCodec.shared.encode(record)))
        }
        try await producer.send(messages)
        let manifest = JobManifest(config: config, shards: shardCount, samples: samples.count)
        try await producer.send(OutgoingMessage(topic: topics.jobs, key: config.job, value: RecordCodec.shared.encode(manifest)))
    }

    func workerOptions(_ id: String) -> WorkerOptions {
        WorkerOptions(job: config.job, workerID: id, brokers: fixture.bootstrapServers, topicPrefix: config.kafka.topicPrefix)
    }

    /// Raw records of a topic, read to its end (read_committed).
    func read(_ topic: String) async throws -> [KafkaMessage] {
        let reader = try await TopicReader(client: fixture.client, topics: [topic], logger: fixture.logger)
        defer { Task { await reader.close() } }
        return try await reader.readToEnd()
    }

    /// Done acks so far, by shard.
    func doneShards() async throws -> Set<String> {
        Set(try await read(config.topics.acks).compactMap { try? RecordCodec.shared.decode(AckRecord.self, from: $0.value) }
            .filter { $0.status == .done }.map(\.shard))
    }

    /// Waits until every shard has a done ack.
    func waitForCompletion(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await doneShards().count == shardCount { return true }
            try await Task.sleep(for: .milliseconds(300))
        }
        return false
    }

    /// The results a reader applying the documented rule sees.
    func readerResults() async throws -> [ResultRecord] {
        let acks = try await read(config.topics.acks).compactMap { try? RecordCodec.shared.decode(AckRecord.self, from: $0.value) }
        let results = try await read(config.topics.results).flatMap { (try? RecordCodec.shared.decodeResults(from: $0.value, type: nil)) ?? [] }
        return ResultLedger.select(acks: acks, results: results)
    }

    /// Tells every worker to stop.
    func stopWorkers() async throws {
        let control = ControlRecord(job: config.job, target: ControlRecord.allWorkers, command: .stop, reason: "test over")
        try await fixture.producer().send(OutgoingMessage(topic: config.topics.control, key: "*", value: RecordCodec.shared.encode(control)))
    }
}
