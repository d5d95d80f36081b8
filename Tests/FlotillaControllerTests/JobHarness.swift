import FlotillaController
import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka

/// Plays `flotilla submit` and the workers against a real broker: creates a job's topics,
/// publishes its manifest and shards, and publishes hand-made heartbeats and acks.
struct JobHarness: Sendable {
    let fixture: BrokerFixture
    let config: JobConfig
    let producer: KafkaProducer
    var topics: TopicNames { config.topics }
    var job: String { config.job }

    /// `builtin`: the stage's predictor; real workers (`flotilla worker`) know `identity`, not `echo`.
    init(fixture: BrokerFixture, shards: Int, faults: FaultConfig, partitions: Int = 4, builtin: String = "echo") async throws {
        self.fixture = fixture
        let job = "it-\(UUID().uuidString.prefix(8).lowercased())"
        config = JobConfig(job: job, inputs: [.inline([])], stages: [StageConfig(name: "echo", predictor: .builtin(builtin))],
                           workers: FleetConfig(min: 1, max: 2), faults: faults,
                           kafka: KafkaConfig(partitions: partitions), baseDirectory: "/tmp")
        producer = try fixture.producer()
        let names = config.topics
        let specs = ([names.jobs] + names.perJob).map {
            TopicSpecification(name: $0, partitions: Int32(names.partitions(of: $0, shardPartitions: partitions)))
        }
        try await fixture.admin().createTopics(specs)
        try await publish(JobManifest(config: config, shards: shards, samples: shards * 2), topic: names.jobs, key: job)
        for index in 0..<shards {
            try await publish(Fixtures.shard(index, at: Timestamp.now()).with(job: job), topic: names.shards,
                              key: Fixtures.id(index), partition: index % partitions)
        }
    }

    func publish<T: FlotillaRecord>(_ record: T, topic: String, key: String, partition: Int? = nil) async throws {
        try await producer.send(OutgoingMessage(topic: topic, partition: partition.map { Int32($0) }, key: key,
                                                value: RecordCodec.shared.encode(record),
                                                headers: [KafkaHeader(RecordHeaders.type, T.recordType)]))
    }

    /// A heartbeat now; `running` lists (shard index, attempt).
    func heartbeat(_ worker: String, running: [(Int, Int)] = [], queued: [Int] = [], partitions: [Int]) async throws {
        var record = Fixtures.heartbeat(worker, at: Timestamp.now(), running: running.map { ($0.0, $0.1, 0) }, queued: queued,
                                        partitions: partitions, startedAt: Timestamp.now())
        record.job = job
        try await publish(record, topic: topics.heartbeats, key: worker)
    }

    func ack(_ index: Int, attempt: Int = 0, worker: String, status: AckStatus = .done, error: String? = nil) async throws {
        var record = Fixtures.ack(index, attempt: attempt, worker: worker, status: status, error: error,
                                  startedAt: Timestamp.now() - 100, finishedAt: Timestamp.now())
        record.job = job
        try await publish(record, topic: topics.acks, key: Fixtures.id(index))
    }

    func controlRecord(_ record: ControlRecord) async throws {
        try await publish(record, topic: topics.control, key: record.target)
    }

    /// A reader of whole topics from the beginning.
    func reader(_ names: [String]) async throws -> KafkaConsumer {
        let consumer = try fixture.consumer(group: nil)
        let metadata = try await fixture.admin().metadata()
        try await consumer.assign(names.flatMap { name in
            (0..<(metadata.topics[name] ?? 1)).map { TopicPartitionOffset(name, $0, TopicPartitionOffset.beginning) }
        })
        return consumer
    }
}

extension ShardRecord {
    func with(job: String) -> ShardRecord {
        var copy = self
        copy.job = job
        return copy
    }
}

extension KafkaConsumer {
    /// Polls until a record decodes as `T` and satisfies `match`, or `timeout` passes.
    func first<T: FlotillaRecord>(_ type: T.Type, topic: String, timeout: Duration,
                                  where match: (T, KafkaMessage) -> Bool) async throws -> (T, KafkaMessage)? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for event in try await poll(timeout: .milliseconds(50)) {
                guard case .message(let message) = event, message.topic == topic,
                      let record = try? RecordCodec.shared.decode(T.self, from: message.value) else { continue }
                if match(record, message) { return (record, message) }
            }
        }
        return nil
    }
}
