import Logging
import RdKafka

/// Tests' reader of raw records (the product reads through FlotillaKafka's `RecordReader`): every
/// partition of some topics from the beginning, outside any consumer group, knowing when it has
/// caught up with each partition's end.
public final class TopicReader: Sendable {
    private let consumer: KafkaConsumer
    private let progress: EndTracker

    /// - Parameters:
    ///   - topics: topics to read; a topic that does not exist yet is an error.
    ///   - lastRecords: read only about this many records at the end of each partition (from the
    ///     high watermark back), not from the beginning.
    public init(client: KafkaClientConfiguration, topics: [String], isolation: KafkaConsumerConfiguration.IsolationLevel = .readCommitted,
                fetchWait: Duration = .milliseconds(50), lastRecords: Int? = nil, logger: Logger) async throws(KafkaError) {
        let admin = try KafkaAdmin(configuration: client, logger: logger)
        let metadata = try await admin.metadata()
        var partitions: [TopicPartitionOffset] = []
        for topic in topics {
            guard let count = metadata.topics[topic] else {
                throw KafkaError(code: 3, name: "UNKNOWN_TOPIC_OR_PART", message: "topic \(topic) does not exist on \(client.bootstrapServers)")
            }
            for partition in 0..<count {
                var start = TopicPartitionOffset.first
                if let lastRecords {
                    let high = try await admin.watermarks(TopicPartition(topic, partition)).high
                    start = max(0, high - Int64(lastRecords))
                }
                partitions.append(TopicPartitionOffset(topic, partition, start))
            }
        }
        var configuration = KafkaConsumerConfiguration(client: client, groupID: nil)
        configuration.isolationLevel = isolation
        configuration.reportEndOfPartition = true
        // Tailing readers want new records soon; some brokers hold an empty fetch for the whole wait.
        configuration.fetchWait = fetchWait
        consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        await consumer.loadMetadata(for: topics)
        try await consumer.assign(partitions)
        progress = EndTracker(Set(partitions.map(\.topicPartition)))
    }

    /// Whether every partition has reached its end at least once.
    public var caughtUp: Bool { progress.allReached }

    /// The next messages, waiting up to `timeout` for the first.
    /// Makes a `poll` blocked on another thread return now (see `KafkaConsumer.interruptPoll`).
    public func interruptPoll() { consumer.interruptPoll() }

    public func poll(timeout: Duration = .milliseconds(100)) async throws(KafkaError) -> [KafkaMessage] {
        var messages: [KafkaMessage] = []
        for event in try await consumer.poll(timeout: timeout) {
            switch event {
            case .message(let message): messages.append(message)
            case .endOfPartition(let partition, _): progress.reached(partition)
            default: break
            }
        }
        return messages
    }

    /// Everything up to each partition's current end; fails if that takes longer than `timeout`.
    public func readToEnd(timeout: Duration = .seconds(30)) async throws(KafkaError) -> [KafkaMessage] {
        var messages: [KafkaMessage] = []
        let deadline = ContinuousClock.now + timeout
        while !caughtUp {
            guard ContinuousClock.now < deadline else {
                throw KafkaError(code: KafkaError.timedOutCode, name: "_TIMED_OUT", message: "reading topics to their end took longer than \(timeout)")
            }
            messages += try await poll()
        }
        return messages
    }

    public func close() async {
        try? await consumer.close()
    }
}

import Synchronization

/// Which partitions have reached their end at least once.
private final class EndTracker: Sendable {
    private let state: Mutex<Set<TopicPartition>>

    init(_ partitions: Set<TopicPartition>) { state = Mutex(partitions) }

    var allReached: Bool { state.withLock { $0.isEmpty } }

    func reached(_ partition: TopicPartition) { _ = state.withLock { $0.remove(partition) } }
}

