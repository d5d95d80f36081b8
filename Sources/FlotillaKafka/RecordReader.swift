import FlotillaCore
import Logging
import RdKafka
import Synchronization

/// Reads partitions of topics outside any consumer group, from offsets it is given, and knows
/// when each has been read to its end: the one reader behind every scan, replay and tail.
///
/// Ends come from end-of-partition events, which follow the fetch high watermark (a committed
/// reader's: the last stable offset); ListOffsets is not trusted, because some brokers (Tansu)
/// answer it wrongly. Re-assigning a reader is cheap, destroying one costs about a second in
/// librdkafka, so a command keeps one reader for all its scans.
public final class RecordReader: Sendable {
    private let consumer: KafkaConsumer
    let connection: BrokerConnection
    private let logger: Logger
    /// What is read now: where each partition started, and which have not reached their end yet.
    private let ends = Mutex(Assignment())

    private struct Assignment {
        var starts: [TopicPartition: Int64] = [:]
        var remaining: Set<TopicPartition> = []
        var topics = ""
    }

    /// - Parameter maxFetchKilobytes: per partition and fetch; large for a replay of many records.
    public init(connection: BrokerConnection, pace: ReadPace, isolation: ReadIsolation, maxFetchKilobytes: Int = 256,
                logger: Logger) throws(FlotillaError) {
        self.connection = connection
        self.logger = logger
        consumer = try connection.consumer(pace: pace, isolation: isolation, logger: logger) { configuration in
            configuration.reportEndOfPartition = true
            configuration.maxPartitionFetchBytes = maxFetchKilobytes * 1024
        }
    }

    /// Reads these partitions from these offsets from now on (instead of what was read before).
    public func read(_ partitions: [TopicPartitionOffset]) async throws(FlotillaError) {
        let topics = Array(Set(partitions.map(\.topic))).sorted()
        // Metadata first: librdkafka's first fetch of a topic it has no metadata for waits for it.
        await consumer.loadMetadata(for: topics)
        do {
            try await consumer.assign(partitions)
        } catch {
            throw FlotillaError(.kafka, "cannot read \(topics.joined(separator: ", ")) at \(connection.bootstrapServers)", underlying: error)
        }
        ends.withLock { $0 = Assignment(starts: Dictionary(partitions.map { ($0.topicPartition, $0.offset) }, uniquingKeysWith: min),
                                        remaining: Set(partitions.map(\.topicPartition)), topics: topics.joined(separator: ", ")) }
    }

    /// Reads every partition of the existing ones of `topics` from `start` (a partition not in
    /// it from offset 0: that spares a ListOffsets round trip per partition, and a partition
    /// whose start was deleted falls back to its earliest offset). Returns the partitions read.
    @discardableResult
    public func read(_ topics: [String], in catalog: TopicCatalog, from start: [TopicPartition: Int64] = [:]) async throws(FlotillaError) -> Set<TopicPartition> {
        let partitions = topics.filter { catalog[$0] != nil }.flatMap { topic in
            (0..<(catalog[topic] ?? 0)).map { TopicPartitionOffset(topic, $0, start[TopicPartition(topic, $0)] ?? 0) }
        }
        try await read(partitions)
        return Set(partitions.map(\.topicPartition))
    }

    /// Reads about the last `count` records of each partition of `topics` (from the high
    /// watermark back) and what follows: a tail that does not replay a long history. A broker
    /// that answers ListOffsets wrongly (Tansu 0.6) makes it read from the start: slower, not wrong.
    public func readLast(_ count: Int, of topics: [String]) async throws(FlotillaError) {
        let admin = try BrokerAdmin(connection: connection, logger: logger)
        let catalog = try await admin.topics()
        var partitions: [TopicPartitionOffset] = []
        for topic in topics {
            guard let partitionCount = catalog[topic] else {
                throw FlotillaError(.kafka, "topic \(topic) does not exist on \(connection.bootstrapServers)")
            }
            for partition in 0..<partitionCount {
                let high = try await admin.highWatermark(TopicPartition(topic, partition))
                partitions.append(TopicPartitionOffset(topic, partition, max(0, high - Int64(count))))
            }
        }
        try await read(partitions)
    }

    /// Whether every partition read has reached its end at least once.
    public var caughtUp: Bool { ends.withLock { $0.remaining.isEmpty } }

    /// The next events, waiting up to `timeout` for the first; end events only for the partitions
    /// read now (an earlier assignment's may still be queued).
    public func poll(maxEvents: Int = 500, timeout: Duration) async throws(FlotillaError) -> [TopicEvent] {
        let polled: [ConsumerEvent]
        do {
            polled = try await consumer.poll(maxEvents: maxEvents, timeout: timeout)
        } catch {
            throw FlotillaError(.kafka, "reading from Kafka at \(connection.bootstrapServers) failed", underlying: error)
        }
        var events: [TopicEvent] = []
        events.reserveCapacity(polled.count)
        let assigned = ends.withLock { $0.starts }
        for event in polled {
            switch event {
            case .message(let message) where assigned[message.topicPartition] != nil:
                events.append(.record(TopicRecord(message)))
            case .endOfPartition(let partition, let offset) where assigned[partition] != nil:
                _ = ends.withLock { $0.remaining.remove(partition) }
                events.append(.end(partition, offset: offset))
            case .error(let error):
                logger.debug("consumer error while reading", metadata: ["flotilla.error": "\(error)"])
            default:
                break
            }
        }
        return events
    }

    /// The records up to each partition's current end; fails when nothing arrives for the
    /// connection's timeout (a stalled read), not after a fixed total.
    public func readToEnd() async throws(FlotillaError) -> [TopicRecord] {
        var records: [TopicRecord] = []
        try await forEach { records.append($0) }
        return records
    }

    /// Calls `handle` with every record up to each partition's current end, in order per
    /// partition (partitions and topics interleave); fails when nothing arrives for the
    /// connection's timeout. Returns the offset after the last record read, per partition (the
    /// start for those with none), for a later read to go on from.
    @discardableResult
    public func forEach(_ handle: (TopicRecord) throws(FlotillaError) -> Void) async throws(FlotillaError) -> [TopicPartition: Int64] {
        var next = ends.withLock { $0.starts }
        let topics = ends.withLock { $0.topics }
        var lastProgress = ContinuousClock.now
        while !caughtUp {
            let events = try await poll(timeout: .milliseconds(100))
            if !events.isEmpty { lastProgress = .now }
            for case .record(let record) in events {
                next[record.topicPartition] = max(next[record.topicPartition] ?? 0, record.offset + 1)
                try handle(record)
            }
            if ContinuousClock.now - lastProgress > connection.timeout {
                throw FlotillaError(
                    .kafka,
                    "reading \(topics) at \(connection.bootstrapServers) made no progress for \(BrokerConnection.describe(connection.timeout)) (a large topic on a busy broker can take longer per fetch: raise --timeout)")
            }
        }
        return next
    }

    /// Reads the existing ones of `topics` from `start` (else their beginnings) to their current
    /// ends, calling `handle` with every record (see `read(_:in:from:)` and `forEach`). Returns
    /// the positions after what was read, for a later scan to go on from.
    @discardableResult
    public func scan(_ topics: [String], in catalog: TopicCatalog, from start: [TopicPartition: Int64] = [:],
                     _ handle: (TopicRecord) throws(FlotillaError) -> Void) async throws(FlotillaError) -> [TopicPartition: Int64] {
        try await read(topics, in: catalog, from: start)
        return try await forEach(handle)
    }

    /// Makes a `poll` blocked on another thread return now (a stop should not wait out its wait).
    public func interruptPoll() { consumer.interruptPoll() }

    /// Stops fetching.
    public func close() async {
        try? await consumer.close()
    }
}
