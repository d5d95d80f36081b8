import Logging
import RdKafka
import Synchronization

/// The controller's producer, replaced by a fresh one when librdkafka declares it unusable: an
/// idempotent producer's fatal error (e.g. an out-of-order sequence) ends that producer id, not
/// the broker. Seen at 100 workers on Tansu, which answered the controller's plain idempotent
/// producer with PRODUCER_FENCED; the job then could not end.
final class ProducerSlot: Sendable {
    private let configuration: KafkaProducerConfiguration
    private let logger: Logger
    private let producer: Mutex<KafkaProducer>
    /// Delivery errors that end a producer id although librdkafka reports them per record, not as
    /// the handle's fatal error: every retry on the same producer gets them again.
    static let fencing: Set<String> = ["PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"]
    /// Replacements allowed in one run: a broker that fences every new producer is not outlasted.
    static let replacementLimit = 5
    private let replacements = Mutex(0)

    init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        self.logger = logger
        producer = Mutex(try KafkaProducer(configuration: configuration, logger: logger))
    }

    var current: KafkaProducer { producer.withLock { $0 } }

    /// Replaces `failed` (unless another caller already did); false once the limit is reached.
    func replace(_ failed: KafkaProducer, after error: KafkaError) -> Bool {
        guard producer.withLock({ $0 === failed }) else { return true }  // another caller already did
        guard replacements.withLock({ count in count += 1; return count <= Self.replacementLimit }) else { return false }
        do {
            let fresh = try KafkaProducer(configuration: configuration, logger: logger)
            producer.withLock { if $0 === failed { $0 = fresh } }
            logger.warning("the controller's producer failed for good; publishing with a new one", metadata: ["flotilla.error": "\(error)"])
            return true
        } catch {
            return false
        }
    }
}
