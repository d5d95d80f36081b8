/// Settings shared by every Kafka client: where the brokers are and the raw passthrough.
public struct KafkaClientConfiguration: Sendable, Hashable {
    /// Comma-separated `host:port` list.
    public var bootstrapServers: String
    /// Appears in broker logs and metrics.
    public var clientID: String = "flotilla"
    /// How long a blocking request (metadata, admin, commit) may take before it fails.
    public var requestTimeout: Duration = .seconds(10)
    /// librdkafka properties passed through as given (security.protocol, sasl.*, ssl.*, ...).
    /// They are applied last, so they override the typed settings; an unknown or invalid one fails
    /// the client's construction with librdkafka's own message.
    public var properties: [String: String] = [:]

    public init(bootstrapServers: String, properties: [String: String] = [:]) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
    }

    /// The librdkafka properties for these settings, typed ones first.
    var librdkafkaProperties: [(String, String)] {
        [("bootstrap.servers", bootstrapServers), ("client.id", clientID),
         ("socket.connection.setup.timeout.ms", String(requestTimeout.milliseconds))]
    }
}

/// Producer settings. Idempotence is on by default: retries never duplicate or reorder records.
public struct KafkaProducerConfiguration: Sendable, Hashable {
    public var client: KafkaClientConfiguration
    public var idempotent: Bool = true
    /// Set for a transactional producer; stable per worker slot so a restarted slot fences its predecessor.
    public var transactionalID: String?
    /// How long records wait to fill a batch.
    public var linger: Duration = .milliseconds(5)
    /// A record not delivered by then fails with `_MSG_TIMED_OUT`.
    public var deliveryTimeout: Duration = .seconds(30)
    /// The largest record the client accepts (librdkafka's `message.max.bytes`).
    public var maxMessageBytes: Int = 1_000_000

    public init(client: KafkaClientConfiguration) { self.client = client }

    var librdkafkaProperties: [(String, String)] {
        var pairs = client.librdkafkaProperties
        pairs += [("enable.idempotence", idempotent ? "true" : "false"),
                  ("linger.ms", String(linger.milliseconds)),
                  ("message.timeout.ms", String(deliveryTimeout.milliseconds)),
                  ("message.max.bytes", String(maxMessageBytes))]
        if let transactionalID { pairs.append(("transactional.id", transactionalID)) }
        return pairs + client.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

/// Consumer settings. Offsets are stored and committed by the application only.
public struct KafkaConsumerConfiguration: Sendable, Hashable {
    /// Whether uncommitted reads of transactional producers are hidden.
    public enum IsolationLevel: String, Sendable, Hashable {
        case readCommitted = "read_committed"
        case readUncommitted = "read_uncommitted"
    }

    /// Where a partition with no committed offset starts.
    public enum OffsetReset: String, Sendable, Hashable {
        case earliest, latest
    }

    public var client: KafkaClientConfiguration
    /// nil for a group-less reader that assigns partitions itself.
    public var groupID: String?
    public var isolationLevel: IsolationLevel = .readCommitted
    public var offsetReset: OffsetReset = .earliest
    /// A member silent for this long is removed from the group.
    public var sessionTimeout: Duration = .seconds(6)
    public var heartbeatInterval: Duration = .seconds(1)
    /// A member that does not poll for this long leaves the group.
    public var maxPollInterval: Duration = .seconds(300)
    /// Commits stored offsets periodically; off by default (Flotilla commits explicitly or in transactions).
    public var autoCommit: Bool = false
    /// Bounded prefetch: at most this many KiB per partition queue, and this many bytes per fetch.
    public var maxQueuedKilobytes: Int = 1024
    public var maxPartitionFetchBytes: Int = 256 * 1024
    /// Emit an end-of-partition event when the consumer reaches a partition's end.
    public var reportEndOfPartition: Bool = false
    /// How long the broker may hold a fetch that has no data (`fetch.wait.max.ms`). Some brokers
    /// (Tansu) hold an empty fetch for the whole wait even when records arrive, so this is both
    /// the tail's latency and, for an idle reader, its fetch rate: 1 / wait per broker.
    public var fetchWait: Duration = .milliseconds(500)

    public init(client: KafkaClientConfiguration, groupID: String?) {
        self.client = client
        self.groupID = groupID
    }

    var librdkafkaProperties: [(String, String)] {
        var pairs = client.librdkafkaProperties
        if let groupID { pairs.append(("group.id", groupID)) } else { pairs.append(("group.id", "flotilla-reader")) }
        pairs += [("partition.assignment.strategy", "cooperative-sticky"),
                  ("enable.auto.offset.store", "false"),
                  ("enable.auto.commit", autoCommit ? "true" : "false"),
                  ("isolation.level", isolationLevel.rawValue),
                  ("auto.offset.reset", offsetReset.rawValue),
                  ("session.timeout.ms", String(sessionTimeout.milliseconds)),
                  ("heartbeat.interval.ms", String(heartbeatInterval.milliseconds)),
                  ("max.poll.interval.ms", String(maxPollInterval.milliseconds)),
                  ("queued.max.messages.kbytes", String(maxQueuedKilobytes)),
                  ("max.partition.fetch.bytes", String(maxPartitionFetchBytes)),
                  ("enable.partition.eof", reportEndOfPartition ? "true" : "false"),
                  ("fetch.wait.max.ms", String(fetchWait.milliseconds))]
        return pairs + client.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }
}

extension Duration {
    /// Whole milliseconds, rounded down; at least 1 for any positive duration.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let value = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
        return value == 0 && attoseconds > 0 ? 1 : value
    }
}
