/// A validated job spec: what `JobSpecLoader` returns and what the job manifest carries.
///
/// Every field has its default filled in and every relative path resolved against the spec file's
/// folder, so a worker on another machine (with the same layout) needs nothing but this value.
/// Encodes to JSON with the same keys as the YAML spec (durations as "5s", see `SpecDuration`).
public struct JobConfig: Sendable, Hashable, Codable {
    /// The job id: `[a-z0-9._-]`, at most 64 characters; generated when the spec has none.
    public var job: String
    /// Where samples come from, in order. At least one.
    public var inputs: [InputConfig]
    /// How inputs are cut into shards.
    public var shard: ShardConfig
    /// The model stages every sample runs through, in order. At least one; names unique.
    public var stages: [StageConfig]
    /// Where results go.
    public var outputs: OutputConfig
    /// The fleet size range.
    public var workers: FleetConfig
    /// Retry and failure-detection settings.
    public var faults: FaultConfig
    /// Whether results are published transactionally with their ack.
    public var delivery: DeliveryMode
    /// Kafka client settings.
    public var kafka: KafkaConfig
    /// `open`: the job stays open for shards published after its own until `flotilla close`;
    /// nil (or `closed`): it ends when its submitted shards are done.
    public var mode: JobMode?
    /// The absolute folder relative paths were resolved against (the spec file's folder).
    public var baseDirectory: String

    public init(
        job: String,
        inputs: [InputConfig],
        shard: ShardConfig = ShardConfig(),
        stages: [StageConfig],
        outputs: OutputConfig = OutputConfig(),
        workers: FleetConfig = FleetConfig(),
        faults: FaultConfig = FaultConfig(),
        delivery: DeliveryMode = .exactlyOnce,
        kafka: KafkaConfig = KafkaConfig(),
        mode: JobMode? = nil,
        baseDirectory: String
    ) {
        self.job = job
        self.inputs = inputs
        self.shard = shard
        self.stages = stages
        self.outputs = outputs
        self.workers = workers
        self.faults = faults
        self.delivery = delivery
        self.kafka = kafka
        self.mode = mode
        self.baseDirectory = baseDirectory
    }

    /// The topic names of this job.
    public var topics: TopicNames { TopicNames(prefix: kafka.topicPrefix, job: job) }

    /// Partitions of the shards topic: `kafka.partitions`, or 2 × `workers.max` when 0.
    public var shardPartitions: Int {
        kafka.partitions > 0 ? kafka.partitions : TopicNames.defaultShardPartitions(maxWorkers: workers.max)
    }

    /// Partitions of the results topic: `kafka.resultPartitions`, or 1.
    public var resultPartitions: Int { kafka.resultPartitions ?? 1 }
}

/// How inputs are cut into shards.
public struct ShardConfig: Sendable, Hashable, Codable {
    /// Samples per shard (the last shard of an input may hold fewer). Default 100; must be > 0.
    public var samples: Int
    /// Largest accepted sample (one line or inline value), in bytes; a larger one becomes an error
    /// result. Default `kafka.maxMessageBytes` less `recordEnvelopeBytes`, so that a result as
    /// large as its input still fits in a record; must be > 0.
    public var maxSampleBytes: Int

    public static let defaultSamples = 100
    /// Room a result record needs around its output: the ids, the run, the keys, Kafka's headers
    /// and batch framing.
    public static let recordEnvelopeBytes = 4_096
    public static let defaultMaxSampleBytes = defaultMaxSampleBytes(maxMessageBytes: KafkaConfig.defaultMaxMessageBytes)

    /// The default sample limit for records of at most `maxMessageBytes`.
    public static func defaultMaxSampleBytes(maxMessageBytes: Int) -> Int {
        max(maxMessageBytes / 2, maxMessageBytes - recordEnvelopeBytes)
    }

    public init(samples: Int = ShardConfig.defaultSamples, maxSampleBytes: Int = ShardConfig.defaultMaxSampleBytes) {
        self.samples = samples
        self.maxSampleBytes = maxSampleBytes
    }
}

/// Where results go.
public struct OutputConfig: Sendable, Hashable, Codable {
    /// Publish one result record per sample to the results topic. Default true.
    public var results: Bool
    /// Also write one JSON-lines file per shard here (absolute once loaded), written to a
    /// temporary name and renamed into place. Default none.
    public var directory: String?

    public init(results: Bool = true, directory: String? = nil) {
        self.results = results
        self.directory = directory
    }
}

/// The fleet size range the controller scales within.
public struct FleetConfig: Sendable, Hashable, Codable {
    /// Never fewer workers than this. Default 1; must be >= 0 (0: the fleet scales to zero when idle).
    public var min: Int
    /// Never more workers than this. Default 4; must be >= 1 and >= min.
    public var max: Int
    /// How long the autoscaler must want fewer workers before it drains some (nil: 30 s).
    public var idleTimeout: Duration?

    public static let defaultIdleTimeout: Duration = .seconds(30)

    public init(min: Int = 1, max: Int = 4, idleTimeout: Duration? = nil) {
        self.min = min
        self.max = max
        self.idleTimeout = idleTimeout
    }
}

/// How a job ends.
public enum JobMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// When its submitted shards are done (the default).
    case closed
    /// When it is closed (`flotilla close`) and every shard published until then is done:
    /// pipelines may publish more shards meanwhile.
    case open
}

/// Whether a shard's results and its ack are published in one Kafka transaction.
public enum DeliveryMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// Results, ack and consumer offsets in one transaction (default). Readers use
    /// `isolation.level=read_committed` and the reader rule (see `ResultLedger`).
    case exactlyOnce = "exactly-once"
    /// No transactions: results may appear more than once on the topic (the reader rule still
    /// gives each sample once); for brokers without transaction support.
    case atLeastOnce = "at-least-once"
}
