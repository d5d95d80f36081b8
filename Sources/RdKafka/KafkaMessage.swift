/// A topic partition.
public struct TopicPartition: Sendable, Hashable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }
}

/// A topic partition with an offset: a position to commit or to start reading from.
public struct TopicPartitionOffset: Sendable, Hashable, CustomStringConvertible {
    public var topicPartition: TopicPartition
    public var offset: Int64

    /// Start at the first record still on the broker.
    public static let beginning: Int64 = -2
    /// Start at offset 0, for readers that replay a topic from its start. Faster than `beginning`:
    /// the logical offset costs an offset query that held the first records back ~0.5 s per
    /// reader on the embedded broker (measured); a partition whose start was deleted falls back
    /// to `auto.offset.reset` (earliest).
    public static let first: Int64 = 0
    /// Start after the last record.
    public static let end: Int64 = -1
    /// No committed offset.
    public static let invalid: Int64 = -1001

    public init(_ topic: String, _ partition: Int32, _ offset: Int64) {
        self.topicPartition = TopicPartition(topic, partition)
        self.offset = offset
    }

    public var topic: String { topicPartition.topic }
    public var partition: Int32 { topicPartition.partition }
    public var description: String { "\(topicPartition)@\(offset)" }
}

/// A record header.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]

    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ value: String) {
        self.init(name, Array(value.utf8))
    }
}

/// A record to produce.
public struct OutgoingMessage: Sendable, Hashable {
    public var topic: String
    /// nil lets the partitioner choose from the key.
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]

    public init(topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8], headers: [KafkaHeader] = []) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
    }

    public init(topic: String, partition: Int32? = nil, key: String, value: [UInt8], headers: [KafkaHeader] = []) {
        self.init(topic: topic, partition: partition, key: Array(key.utf8), value: value, headers: headers)
    }
}

/// Where a produced record landed.
public struct DeliveryReport: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A consumed record.
public struct KafkaMessage: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    public var key: [UInt8]?
    public var value: [UInt8]
    public var headers: [KafkaHeader]
    /// Milliseconds since the epoch, when the broker gave one.
    public var timestamp: Int64?

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }

    /// The key as UTF-8 text, when there is one.
    public var keyString: String? { key.map { String(decoding: $0, as: UTF8.self) } }

    /// The first header with this name.
    public func header(_ name: String) -> [UInt8]? { headers.first { $0.name == name }?.value }
}
