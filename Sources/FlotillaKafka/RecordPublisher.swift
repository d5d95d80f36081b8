import FlotillaCore
import Logging
import RdKafka
import Synchronization

/// Publishes Flotilla records outside transactions (manifests, shard records, commands,
/// heartbeats, dead letters). Idempotent: a retry never duplicates or reorders records.
///
/// Its producer is replaced by a fresh one when librdkafka declares it unusable: an idempotent
/// producer's fatal error (an out-of-order sequence, a fenced producer id) ends that producer id,
/// not the broker. Seen at 100 workers on Tansu, which answered the controller's plain idempotent
/// producer with PRODUCER_FENCED; the job then could not end.
public final class RecordPublisher: Sendable {
    private let configuration: KafkaProducerConfiguration
    private let logger: Logger
    private let producer: Mutex<KafkaProducer>
    private let replacements = Mutex(0)
    /// Delivery errors that end a producer id although librdkafka reports them per record, not as
    /// the handle's fatal error: every retry on the same producer gets them again.
    static let fencing: Set<String> = ["PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"]
    /// Replacements allowed in one run: a broker that fences every new producer is not outlasted.
    static let replacementLimit = 5

    /// - Parameters:
    ///   - maxMessageBytes: the largest record accepted (`kafka.maxMessageBytes`).
    ///   - linger: how long records wait to fill a batch (librdkafka's default 5 ms when nil).
    public init(connection: BrokerConnection, maxMessageBytes: Int = 1_000_000, linger: Duration? = nil,
                logger: Logger) throws(FlotillaError) {
        var configuration = connection.producerConfiguration
        configuration.maxMessageBytes = maxMessageBytes
        if let linger { configuration.linger = linger }
        self.configuration = configuration
        self.logger = logger
        do {
            producer = Mutex(try KafkaProducer(configuration: configuration, logger: logger))
        } catch {
            throw BrokerConnection.clientError(error)
        }
    }

    var current: KafkaProducer { producer.withLock { $0 } }

    /// Publishes `records` in order and waits for every acknowledgement; fails with the first error.
    @discardableResult
    public func send(_ records: [OutgoingRecord]) async throws(KafkaError) -> [Delivery] {
        guard !records.isEmpty else { return [] }
        return try await current.send(records.map(\.message)).map { Delivery(partition: $0.partition, offset: $0.offset) }
    }

    /// Publishes one record and waits for its acknowledgement.
    @discardableResult
    public func send(_ record: OutgoingRecord) async throws(KafkaError) -> Delivery {
        try await send([record])[0]
    }

    /// Queues `record` without waiting for it (a heartbeat: during an outage it waits in the
    /// producer's queue); fails only when it cannot even be queued.
    public func enqueue(_ record: OutgoingRecord) throws(KafkaError) {
        try current.enqueue(record.message)
    }

    /// Publishes `records` in order, riding out a broker outage (`OutageRetry`) instead of
    /// failing, and replacing a producer that failed for good. A record delivered twice must be
    /// harmless to the caller. The error that ends it is `giveUp`'s.
    @discardableResult
    public func sendRidingOutages(_ records: [OutgoingRecord], retrying: (KafkaError, Int) -> Void,
                                  giveUp: (KafkaError, Int) -> any Error) async throws -> [Delivery] {
        guard !records.isEmpty else { return [] }
        return try await OutageRetry.run(pauseStep: .milliseconds(500), retrying: retrying, giveUp: giveUp) {
            let producer = current
            do {
                return try await producer.send(records.map(\.message)).map { Delivery(partition: $0.partition, offset: $0.offset) }
            } catch let error as KafkaError where error.isFatal || producer.fatalError != nil || Self.fencing.contains(error.name) {
                guard replace(producer, after: error) else { throw error }
                var retry = error
                retry.isFatal = false  // the new producer may send them
                throw retry
            }
        }
    }

    /// Loads the metadata of `topics` first, so that the first send to a just-created topic does
    /// not wait out librdkafka's retry backoff (1–2 s). Returns the partition count of each found.
    @discardableResult
    public func prepare(for topics: [String]) async -> [String: Int32] {
        await current.loadMetadata(for: topics)
    }

    /// Waits up to `timeout` for queued records to be delivered.
    public func flush(timeout: Duration) async {
        try? await current.flush(timeout: timeout)
    }

    /// Replaces `failed` (unless another caller already did); false once the limit is reached.
    func replace(_ failed: KafkaProducer, after error: KafkaError) -> Bool {
        guard producer.withLock({ $0 === failed }) else { return true }  // another caller already did
        guard replacements.withLock({ count in count += 1; return count <= Self.replacementLimit }) else { return false }
        do {
            let fresh = try KafkaProducer(configuration: configuration, logger: logger)
            producer.withLock { if $0 === failed { $0 = fresh } }
            logger.warning("a producer failed for good; publishing with a new one", metadata: ["flotilla.error": "\(error)"])
            return true
        } catch {
            return false
        }
    }
}
