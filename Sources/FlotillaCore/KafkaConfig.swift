/// Kafka client settings.
public struct KafkaConfig: Sendable, Hashable, Codable {
    /// Bootstrap servers, "host:port[,host:port...]". Default none: `--brokers` on the command
    /// line, or the embedded broker of `flotilla run`. The command line wins when both are given.
    public var brokers: String?
    /// Prefix of every topic name: `[A-Za-z0-9._-]`, at most 100 characters. Default "flotilla".
    public var topicPrefix: String
    /// Partitions of the shards topic; 0 (default) means 2 × `workers.max`.
    public var partitions: Int
    /// Partitions of the results topic; nil (default) means 1. A shard's results go to its shard
    /// record's partition modulo this. More lets several consumers read results in parallel, at
    /// a price on brokers whose transaction cost grows with the partitions written (Tansu:
    /// spreading results over 60 partitions made 30 workers 3–4× slower, measured).
    public var resultPartitions: Int?
    /// Replication factor of created topics; nil (default) means the broker's default.
    public var replicationFactor: Int?
    /// Largest record Flotilla produces, in bytes; inline shards are cut to fit and a larger result
    /// becomes an error result. Passed to the client as `message.max.bytes`. Default 1000000.
    public var maxMessageBytes: Int
    /// librdkafka properties passed through as is (security, SASL, TLS, tuning). Keys Flotilla
    /// sets itself are refused: see `KafkaConfig.reservedProperties`.
    public var properties: [String: String]

    public static let defaultTopicPrefix = "flotilla"
    public static let defaultMaxMessageBytes = 1_000_000

    /// Properties Flotilla owns; setting them would break the delivery contract.
    public static let reservedProperties: [String: String] = [
        "bootstrap.servers": "set kafka.brokers instead",
        "metadata.broker.list": "set kafka.brokers instead",
        "group.id": "Flotilla names the worker group itself",
        "transactional.id": "Flotilla names each worker's transactional producer itself",
        "enable.auto.commit": "Flotilla commits offsets only for finished shards",
        "enable.auto.offset.store": "Flotilla stores offsets only for finished shards",
        "isolation.level": "Flotilla reads committed records only",
        "enable.idempotence": "Flotilla turns it on itself",
        "message.max.bytes": "set kafka.maxMessageBytes instead",
        "auto.offset.reset": "Flotilla reads every shard record from the start of its partition",
        "group.instance.id": "static membership would keep a dead worker's partitions until its session times out",
        "partition.assignment.strategy": "Flotilla uses cooperative-sticky assignment, so a rebalance does not stop every worker",
        "group.protocol": "Flotilla uses the classic consumer group protocol",
        "enable.partition.eof": "Flotilla's readers set it where they need it",
    ]

    /// Whether a librdkafka property holds a secret (a password, a client secret, a private
    /// key): such values never go into the manifest on Kafka, onto command lines or into logs.
    public static func isSecret(_ key: String) -> Bool {
        let key = key.lowercased()
        return key.contains("password") || key.contains("secret") || key == "ssl.key.pem" || key == "ssl_key"
            || key == "sasl.oauthbearer.config"
    }

    public init(
        brokers: String? = nil,
        topicPrefix: String = KafkaConfig.defaultTopicPrefix,
        partitions: Int = 0,
        resultPartitions: Int? = nil,
        replicationFactor: Int? = nil,
        maxMessageBytes: Int = KafkaConfig.defaultMaxMessageBytes,
        properties: [String: String] = [:]
    ) {
        self.brokers = brokers
        self.topicPrefix = topicPrefix
        self.partitions = partitions
        self.resultPartitions = resultPartitions
        self.replicationFactor = replicationFactor
        self.maxMessageBytes = maxMessageBytes
        self.properties = properties
    }
}
