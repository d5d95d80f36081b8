import RdKafka

// Plain values of the Kafka layer that the rest of Flotilla names: where a record sits, and why a
// Kafka call failed. Every call into librdkafka is made in this module; these are only values.

/// A topic and one of its partitions.
public typealias TopicPartition = RdKafka.TopicPartition
/// A position in a partition: the offset of a record, or the next offset to read or commit.
public typealias TopicPartitionOffset = RdKafka.TopicPartitionOffset
/// A Kafka call's failure as librdkafka reports it (`isFatal`, `isRetriable`, `rejectsRecords`).
public typealias KafkaError = RdKafka.KafkaError

/// How long the broker may hold an empty fetch (`fetch.wait.max.ms`) for each kind of reader: the
/// one place these waits are chosen.
///
/// Some brokers (Tansu) hold an empty fetch for its whole wait even when records arrive, and
/// re-poll its partitions meanwhile, so the wait is both a tail's latency and an idle reader's
/// cost on the broker: 1 / wait fetches per second, each touching every partition it reads.
public enum ReadPace: Sendable, Hashable {
    /// 10 ms: a read to a topic's current end (a command's scan, a manifest lookup, a take):
    /// each empty fetch should be answered at once.
    case catchUp
    /// 50 ms: the controller's replay and tail of a job's ledger topics; replay ends at
    /// end-of-partition events, which an empty partition only sends after a fetch wait.
    case replay
    /// 100 ms: the controller's tail of the shards topic (many partitions, seen within a tick).
    case shardsTail
    /// 250 ms: a worker's tail of the control topic (commands, the warm start's takes).
    case commands
    /// 500 ms: a worker's group consumer on the shards topic; a fetch with data returns at once,
    /// this paces an idle worker's empty fetches.
    case group
    /// 1 s: a worker's tail of the acks topic, a hint (done shards to skip): 20 workers' ack tails
    /// at 250 ms saturated the embedded broker (measured).
    case hints

    /// The fetch wait.
    public var fetchWait: Duration {
        switch self {
        case .catchUp: .milliseconds(10)
        case .replay: .milliseconds(50)
        case .shardsTail: .milliseconds(100)
        case .commands: .milliseconds(250)
        case .group: .milliseconds(500)
        case .hints: .seconds(1)
        }
    }
}

/// Whether a reader sees records of transactions that are still open or were aborted.
public enum ReadIsolation: Sendable, Hashable {
    /// Only committed transactions: for topics written in transactions (acks, results).
    case committed
    /// Everything written: for topics never written in transactions, whose ends a committed
    /// reader reached 0.5–1 s later on the embedded broker (0.06 s uncommitted, measured).
    case uncommitted

    var level: KafkaConsumerConfiguration.IsolationLevel {
        self == .committed ? .readCommitted : .readUncommitted
    }
}
