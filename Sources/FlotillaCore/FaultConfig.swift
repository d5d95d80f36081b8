/// Retry and failure-detection settings.
public struct FaultConfig: Sendable, Hashable, Codable {
    /// Executions a shard gets before it goes to the DLQ. Default 3; must be >= 1.
    public var maxAttempts: Int
    /// How often a worker publishes a heartbeat. Default 1s; must be > 0.
    public var heartbeat: Duration
    /// A worker with no heartbeat for this long is lost: its shards are re-enqueued and it is
    /// replaced. Default 5s; must be > heartbeat.
    public var workerTimeout: Duration
    /// A shard whose progress has not moved for this long is re-enqueued (its lease expired).
    /// Default 60s; must be > heartbeat.
    public var shardTimeout: Duration
    /// Start a speculative copy of a straggling shard when the fleet is idle at the tail; the
    /// first ack wins. Default true.
    public var speculative: Bool
    /// The error budget: once `errorBudgetSamples` samples are done (or the whole job, when it is
    /// smaller), a job whose failed samples exceed this fraction stops as failed (exit 4); a job
    /// that completes above it exits 4 too. Default 0.5; 1 turns it off.
    public var maxErrorRate: Double

    public static let defaultMaxAttempts = 3
    public static let defaultMaxErrorRate = 0.5
    /// Samples done before the error budget is judged: fewer say little about a whole job.
    public static let errorBudgetSamples = 1_000
    public static let defaultHeartbeat: Duration = .seconds(1)
    public static let defaultWorkerTimeout: Duration = .seconds(5)
    public static let defaultShardTimeout: Duration = .seconds(60)

    public init(
        maxAttempts: Int = FaultConfig.defaultMaxAttempts,
        heartbeat: Duration = FaultConfig.defaultHeartbeat,
        workerTimeout: Duration = FaultConfig.defaultWorkerTimeout,
        shardTimeout: Duration = FaultConfig.defaultShardTimeout,
        speculative: Bool = true,
        maxErrorRate: Double = FaultConfig.defaultMaxErrorRate
    ) {
        self.maxAttempts = maxAttempts
        self.heartbeat = heartbeat
        self.workerTimeout = workerTimeout
        self.shardTimeout = shardTimeout
        self.speculative = speculative
        self.maxErrorRate = maxErrorRate
    }

    private enum CodingKeys: String, CodingKey {
        case maxAttempts, heartbeat, workerTimeout, shardTimeout, speculative, maxErrorRate
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        maxAttempts = try container.decode(Int.self, forKey: .maxAttempts)
        heartbeat = try container.decodeDuration(forKey: .heartbeat)
        workerTimeout = try container.decodeDuration(forKey: .workerTimeout)
        shardTimeout = try container.decodeDuration(forKey: .shardTimeout)
        speculative = try container.decode(Bool.self, forKey: .speculative)
        // Absent from manifests written before it existed.
        maxErrorRate = try container.decodeIfPresent(Double.self, forKey: .maxErrorRate) ?? FaultConfig.defaultMaxErrorRate
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(maxAttempts, forKey: .maxAttempts)
        try container.encodeDuration(heartbeat, forKey: .heartbeat)
        try container.encodeDuration(workerTimeout, forKey: .workerTimeout)
        try container.encodeDuration(shardTimeout, forKey: .shardTimeout)
        try container.encode(speculative, forKey: .speculative)
        try container.encode(maxErrorRate, forKey: .maxErrorRate)
    }
}
