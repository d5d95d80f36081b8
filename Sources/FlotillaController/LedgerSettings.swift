import FlotillaCore

/// The ledger's rules' knobs, in epoch milliseconds, taken from the job's `faults` settings.
public struct LedgerSettings: Sendable, Hashable {
    /// Executions a shard gets before it is dead-lettered (`faults.maxAttempts`).
    public var maxAttempts: Int
    /// How often workers send heartbeats (`faults.heartbeat`).
    public var heartbeatMs: Int64
    /// A worker silent this long is lost (`faults.workerTimeout`).
    public var workerTimeoutMs: Int64
    /// An in-flight shard with no progress this long is hung (`faults.shardTimeout`).
    public var shardTimeoutMs: Int64
    /// Start speculative copies of stragglers at the tail (`faults.speculative`).
    public var speculative: Bool
    /// Partitions of the shards topic (targets of re-enqueues when no worker reports any).
    public var shardPartitions: Int
    /// Shards stolen for one idle worker per tick: as many as it can start soon.
    public var stealPerIdleWorker: Int
    /// A shard running longer than this many times the median shard time is a straggler.
    public var speculativeFactor: Double
    /// How long the whole fleet must sit idle, and a shard's latest attempt must be old, before the
    /// final reconcile re-publishes shards that no worker holds (their record was lost).
    public var reconcileAfterMs: Int64
    /// Shards a worker still waiting for its consumer-group assignment may hold from the warm
    /// start at once (`ShardLedger+WarmStart`). 64: a take reaches the worker ~150 ms after its
    /// last commit (heartbeat, tick, the control topic's fetch wait), and with 32 a fast model's
    /// worker (64 shards a second) ran out between takes: no shard ran ~40 % of its first 2.5 s.
    public var warmStartShards: Int
    /// The fraction of failed samples above which the job fails (`faults.maxErrorRate`).
    public var maxErrorRate: Double

    public init(
        maxAttempts: Int = FaultConfig.defaultMaxAttempts,
        heartbeatMs: Int64 = 1_000,
        workerTimeoutMs: Int64 = 5_000,
        shardTimeoutMs: Int64 = 60_000,
        speculative: Bool = true,
        shardPartitions: Int = 32,
        stealPerIdleWorker: Int = 2,
        speculativeFactor: Double = 3,
        reconcileAfterMs: Int64? = nil,
        warmStartShards: Int = 64,
        maxErrorRate: Double = FaultConfig.defaultMaxErrorRate
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.heartbeatMs = max(1, heartbeatMs)
        self.workerTimeoutMs = workerTimeoutMs
        self.shardTimeoutMs = shardTimeoutMs
        self.speculative = speculative
        self.shardPartitions = max(1, shardPartitions)
        self.stealPerIdleWorker = max(1, stealPerIdleWorker)
        self.speculativeFactor = speculativeFactor
        // The fleet must look idle for as long as it takes to declare a worker lost: a shorter
        // wait would re-publish records that are merely still on their way to a worker.
        self.reconcileAfterMs = reconcileAfterMs ?? max(workerTimeoutMs, 3 * heartbeatMs)
        self.warmStartShards = max(0, warmStartShards)
        self.maxErrorRate = maxErrorRate
    }

    /// The settings of a job.
    public init(config: JobConfig) {
        self.init(
            maxAttempts: config.faults.maxAttempts,
            heartbeatMs: config.faults.heartbeat.milliseconds,
            workerTimeoutMs: config.faults.workerTimeout.milliseconds,
            shardTimeoutMs: config.faults.shardTimeout.milliseconds,
            speculative: config.faults.speculative,
            shardPartitions: config.shardPartitions,
            maxErrorRate: config.faults.maxErrorRate)
    }
}
