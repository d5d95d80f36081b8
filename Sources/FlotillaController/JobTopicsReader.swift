import FlotillaCore
import Logging
import RdKafka

/// Reads every partition of a job's topics from the beginning (no consumer group), and says when
/// each has been read to its end once: the controller's replay.
///
/// The ends come from end-of-partition events, not high watermarks (which Tansu reports wrongly).
/// Three consumers: the shards topic (its many partitions) and the acks topic apart from the few
/// partitions the fleet's liveness depends on (heartbeats, control, jobs, DLQ). One fetch covering them
/// all took ~200 ms on a loaded Tansu with 86 partitions, and heartbeats then reached the
/// controller more slowly than ten workers sent them: the fleet looked lost (measured).
final class JobTopicsReader: Sendable {
    let consumer: KafkaConsumer
    let shardsConsumer: KafkaConsumer
    /// The acks topic alone: it is written in transactions, so it is read `read_committed`. The
    /// other topics are not, and a `read_committed` reader took 0.5-1 s to reach their ends on the
    /// embedded broker (read_uncommitted: 0.06 s), which every job start paid (measured).
    let acksConsumer: KafkaConsumer
    let topics: TopicNames
    private let client: KafkaClientConfiguration
    private let logger: Logger

    init(client: KafkaClientConfiguration, topics: TopicNames, logger: Logger) throws(KafkaError) {
        self.client = client
        var configuration = KafkaConsumerConfiguration(client: client, groupID: nil)
        // Short fetch waits: replay ends at end-of-partition events, which an empty partition
        // only sends after a fetch wait; the tail should also see acks within a tick.
        configuration.fetchWait = .milliseconds(50)
        configuration.isolationLevel = .readUncommitted
        configuration.reportEndOfPartition = true
        configuration.maxPartitionFetchBytes = 1024 * 1024
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        configuration.fetchWait = .milliseconds(100)
        shardsConsumer = try KafkaConsumer(configuration: configuration, logger: logger)
        // Acks are published in transactions: a reader must not count an aborted one.
        configuration.isolationLevel = .readCommitted
        configuration.fetchWait = .milliseconds(50)
        acksConsumer = try KafkaConsumer(configuration: configuration, logger: logger)
        self.topics = topics
        self.logger = logger
    }

    /// The topics read, in the order their records should be applied when several are ready.
    var names: [String] { [topics.jobs, topics.shards, topics.control, topics.acks, topics.heartbeats, topics.dlq] }

    /// Waits until `names` exist (up to `timeout`), then reads all their partitions from the start.
    /// Returns the partitions read.
    func assignAll(admin: KafkaAdmin, only: [String]? = nil, timeout: Duration) async throws(FlotillaError) -> Set<TopicPartition> {
        let wanted = only ?? names
        let deadline = ContinuousClock.now + timeout
        while true {
            let metadata: ClusterMetadata
            do {
                metadata = try await admin.metadata()
            } catch {
                throw FlotillaError(.kafka, "cannot read topic metadata from Kafka", underlying: error)
            }
            let missing = wanted.filter { (metadata.topics[$0] ?? 0) == 0 }
            if missing.isEmpty {
                var partitions: [TopicPartitionOffset] = []
                for topic in wanted {
                    for partition in 0..<(metadata.topics[topic] ?? 0) {
                        partitions.append(TopicPartitionOffset(topic, partition, TopicPartitionOffset.first))
                    }
                }
                do {
                    let quiet = [topics.acks, topics.control, topics.dlq]
                    let split = [
                        (consumer, partitions.filter { $0.topic != topics.shards && !quiet.contains($0.topic) }),
                        (shardsConsumer, partitions.filter { $0.topic == topics.shards }),
                        (acksConsumer, partitions.filter { quiet.contains($0.topic) }),
                    ]
                    await withTaskGroup(of: Void.self) { group in
                        for (reader, assigned) in split {
                            group.addTask { await reader.loadMetadata(for: Array(Set(assigned.map(\.topic)))) }
                        }
                    }
                    for (reader, assigned) in split { try await reader.assign(assigned) }
                } catch {
                    throw FlotillaError(.kafka, "cannot read the job's topics", underlying: error)
                }
                return Set(partitions.map(\.topicPartition))
            }
            if ContinuousClock.now >= deadline {
                throw FlotillaError(.invalidInput, "topic(s) \(missing.joined(separator: ", ")) do not exist on the brokers; submit the job first (flotilla submit JOB.yaml --brokers B)")
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// What the consumers have: the shards' and acks' ready events, then the others' (waiting up to `timeout`).
    func poll(timeout: Duration) async throws(FlotillaError) -> [ConsumerEvent] {
        do {
            let ready = try await shardsConsumer.poll(maxEvents: 2_000, timeout: .zero)
                + acksConsumer.poll(maxEvents: 2_000, timeout: .zero)
            return try await ready + consumer.poll(maxEvents: 2_000, timeout: ready.isEmpty ? timeout : .zero)
        } catch {
            throw FlotillaError(.kafka, "reading the job's topics failed", underlying: error)
        }
    }

    /// Who wrote the record at `offset` of acks `partition`, as a `read_uncommitted` reader sees it
    /// (the first record of the transaction that holds a committed reader there), and what it is.
    /// Nil if none arrives within `timeout`.
    func uncommittedWriter(_ partition: TopicPartition, at offset: Int64, timeout: Duration = .seconds(5)) async -> (worker: String, record: String)? {
        var configuration = KafkaConsumerConfiguration(client: client, groupID: nil)
        configuration.isolationLevel = .readUncommitted
        configuration.fetchWait = .milliseconds(50)
        guard let consumer = try? KafkaConsumer(configuration: configuration, logger: logger) else { return nil }
        defer { Task { try? await consumer.close() } }
        guard (try? await consumer.assign([TopicPartitionOffset(partition.topic, partition.partition, offset)])) != nil else { return nil }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for event in (try? await consumer.poll(timeout: .milliseconds(100))) ?? [] {
                guard case .message(let message) = event, message.offset >= offset else { continue }
                if message.isSettle, let settle = try? RecordCodec.shared.decode(SettleRecord.self, from: message.value) {
                    return (settle.worker, "a settle record")
                }
                return (try? RecordCodec.shared.decode(AckRecord.self, from: message.value)).map { ($0.worker, "the ack of \($0.shard)") }
            }
        }
        return nil
    }

    func close() async {
        try? await consumer.close()
        try? await shardsConsumer.close()
        try? await acksConsumer.close()
    }
}
