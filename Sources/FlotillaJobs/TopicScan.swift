import FlotillaCore
import Logging
import RdKafka

/// Reads whole topics from their beginning to their current end, outside any consumer group.
///
/// The end is where every partition has sent an end-of-partition event (as `TopicReader`): the
/// broker's ListOffsets high watermark is not trusted (Tansu answers it wrongly). A topic that does
/// not exist reads as empty. Records are read `read_committed`; readers still apply the reader
/// rule, because not every broker hides aborted transactions.
///
/// One consumer serves every scan of a command (each scan re-assigns it): destroying a librdkafka
/// consumer costs about a second, so a command that made one per topic would be slow.
final class TopicScan: Sendable {
    let connection: BrokerConnection
    let logger: Logger
    private let consumer: KafkaConsumer

    init(connection: BrokerConnection, logger: Logger) throws(FlotillaError) {
        self.connection = connection
        self.logger = logger
        var configuration = KafkaConsumerConfiguration(client: connection.client, groupID: nil)
        configuration.isolationLevel = .readCommitted
        configuration.offsetReset = .earliest
        configuration.reportEndOfPartition = true
        // A catch-up read wants each empty fetch answered at once, not after the 500 ms default.
        configuration.fetchWait = .milliseconds(10)
        do {
            consumer = try KafkaConsumer(configuration: configuration, logger: logger)
        } catch {
            throw BrokerConnection.clientError(error)
        }
    }

    /// Stops fetching; call once the command has read what it needs.
    func close() async {
        try? await consumer.close()
    }

    /// Calls `handle` with every record of the existing ones of `topics`, in order per partition
    /// (partitions and topics interleave), until all partitions reached their end. Fails when
    /// nothing arrives for `connection.timeout` (a stalled read), not after a fixed total.
    /// - Parameter start: where to start in some partitions (an earlier scan's answer); the others
    ///   are read from their beginning.
    /// - Returns: the offset after the last record read, per partition, for a later scan to go on from.
    @discardableResult
    func forEach(
        _ topics: [String], metadata: ClusterMetadata, from start: [TopicPartition: Int64] = [:],
        _ handle: (KafkaMessage) throws(FlotillaError) -> Void
    ) async throws(FlotillaError) -> [TopicPartition: Int64] {
        let existing = topics.filter { metadata.topics[$0] != nil }
        guard !existing.isEmpty else { return start }
        // Offset 0 rather than "beginning": it spares a ListOffsets round trip per partition, and
        // a partition whose start was deleted falls back to its earliest offset (offset reset).
        let partitions = existing.flatMap { topic in
            (0..<(metadata.topics[topic] ?? 0)).map { TopicPartitionOffset(topic, $0, start[TopicPartition(topic, $0)] ?? 0) }
        }
        var next = Dictionary(uniqueKeysWithValues: partitions.map { ($0.topicPartition, $0.offset) })
        let names = existing.joined(separator: ", ")
        do {
            try await consumer.assign(partitions)
        } catch {
            throw FlotillaError(.kafka, "cannot read \(names) at \(connection.bootstrapServers)", underlying: error)
        }
        var remaining = Set(partitions.map(\.topicPartition))
        let assigned = remaining
        var lastProgress = ContinuousClock.now
        while !remaining.isEmpty {
            let events: [ConsumerEvent]
            do {
                events = try await consumer.poll(timeout: .milliseconds(100))
            } catch {
                throw FlotillaError(.kafka, "reading \(names) failed", underlying: error)
            }
            if !events.isEmpty { lastProgress = ContinuousClock.now }
            for event in events {
                switch event {
                case .message(let message):
                    // Records of an earlier scan's partitions may still be queued: skip them.
                    if assigned.contains(message.topicPartition) {
                        next[message.topicPartition] = max(next[message.topicPartition] ?? 0, message.offset + 1)
                        try handle(message)
                    }
                case .endOfPartition(let partition, _):
                    remaining.remove(partition)
                case .error(let error):
                    logger.debug("consumer error while reading", metadata: ["flotilla.error": "\(error)"])
                case .assigned, .revoked:
                    break
                }
            }
            if ContinuousClock.now - lastProgress > connection.timeout {
                throw FlotillaError(
                    .kafka,
                    "reading \(names) at \(connection.bootstrapServers) made no progress for \(BrokerConnection.describe(connection.timeout)) (a large topic on a busy broker can take longer per fetch: raise --timeout)")
            }
        }
        return next
    }
}

extension KafkaMessage {
    /// Decodes the value as a `T`, or nil when the record is of another type (by its header) or
    /// undecodable; `problems` counts the undecodable ones.
    func decode<T: FlotillaRecord>(_ type: T.Type, problems: inout Int) -> T? {
        if let recordType, recordType != T.recordType { return nil }
        do {
            return try RecordCodec.shared.decode(T.self, from: value)
        } catch {
            problems += 1
            return nil
        }
    }

    /// The per-sample results in a record of the results topic (a batch or a single result);
    /// empty when undecodable, which `problems` counts.
    func decodeResults(problems: inout Int) -> [ResultRecord] {
        do {
            return try RecordCodec.shared.decodeResults(from: value, type: recordType)
        } catch {
            problems += 1
            return []
        }
    }
}
