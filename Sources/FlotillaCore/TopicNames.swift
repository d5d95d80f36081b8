/// The Kafka topic names of one job (docs/PROTOCOL.md, "Topics").
///
/// `<p>.jobs` is shared by all jobs with the prefix `p`; the others are per job:
/// `<p>.<job>.shards`, `.results`, `.acks`, `.heartbeats`, `.control`, `.dlq`.
public struct TopicNames: Sendable, Hashable {
    public let prefix: String
    public let job: String

    public init(prefix: String = KafkaConfig.defaultTopicPrefix, job: String) {
        self.prefix = prefix
        self.job = job
    }

    /// `<p>.jobs`: job manifests, compacted, keyed by job id.
    public var jobs: String { "\(prefix).jobs" }
    /// `<p>.<job>.shards`: shard records, keyed by shard id.
    public var shards: String { "\(prefix).\(job).shards" }
    /// `<p>.<job>.results`: result records, keyed by sample id.
    public var results: String { "\(prefix).\(job).results" }
    /// `<p>.<job>.acks`: ack records (the completion ledger), keyed by shard id.
    public var acks: String { "\(prefix).\(job).acks" }
    /// `<p>.<job>.heartbeats`: heartbeat records, keyed by worker id.
    public var heartbeats: String { "\(prefix).\(job).heartbeats" }
    /// `<p>.<job>.control`: control records, keyed by worker id or `*`.
    public var control: String { "\(prefix).\(job).control" }
    /// `<p>.<job>.dlq`: dead letters, keyed by shard id (or empty when unknown).
    public var dlq: String { "\(prefix).\(job).dlq" }

    /// `<p>.<job>.workers`: the consumer group in which the job's workers share the shards topic.
    public var workerGroup: String { "\(prefix).\(job).workers" }

    /// All per-job topics (not `jobs`), in a fixed order.
    public var perJob: [String] { [shards, results, acks, heartbeats, control, dlq] }

    /// Shards-topic partitions per potential worker: every worker owns some (the controller
    /// steals work into them), a few spare so that Kafka's assignment spreads evenly. Not more:
    /// every partition costs each fetch on the broker (on Tansu, 10 workers over 80 partitions
    /// ran 5.8× slower than over 20, measured), and the tail is balanced by stealing, not by the
    /// assignment.
    public static let partitionsPerWorker = 2

    /// The default partition count of the shards and results topics: 2 × `workers.max`.
    public static func defaultShardPartitions(maxWorkers: Int) -> Int {
        partitionsPerWorker * max(1, maxWorkers)
    }

    /// The partition count of each topic: shards `shardPartitions`, results `resultPartitions`;
    /// jobs, acks, heartbeats, control and dlq 1 (low volume, and one partition keeps a single
    /// total order for readers of the ledger).
    public func partitions(of topic: String, shardPartitions: Int, resultPartitions: Int = 1) -> Int {
        topic == shards ? shardPartitions : topic == results ? resultPartitions : 1
    }

    /// Kafka's limit on topic name length.
    public static let maxTopicNameLength = 249

    /// Why `prefix` is not a usable topic prefix, or nil: `[A-Za-z0-9._-]`, 1 to 100 characters.
    public static func problem(withPrefix prefix: String) -> String? {
        if prefix.isEmpty { return "must not be empty" }
        if prefix.count > 100 { return "must be at most 100 characters" }
        if let bad = prefix.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0))) }) {
            return "may hold only letters, digits, '.', '_' and '-', not '\(bad)'"
        }
        return nil
    }
}
