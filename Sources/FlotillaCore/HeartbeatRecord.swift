/// A worker's periodic report on `<p>.<job>.heartbeats`, keyed by worker id, every
/// `faults.heartbeat`. The controller declares a worker lost after `faults.workerTimeout` without one.
public struct HeartbeatRecord: FlotillaRecord, Hashable {
    public static let recordType = "heartbeat"
    public static let recordName = "heartbeat record"

    public var job: String
    public var worker: String
    public var host: String
    public var pid: Int
    /// When it was sent (epoch ms).
    public var time: Int64
    public var state: WorkerState
    /// Shards being executed now, with progress.
    public var inFlight: [InFlightShard]
    /// Shard ids received but not started (the local queue), oldest first.
    public var queued: [String]
    /// True when nothing is in flight or queued: the controller may steal work for this worker.
    public var idle: Bool
    /// Samples finished per second over the last interval (0 when idle). Never NaN or infinite.
    public var samplesPerSecond: Double
    /// One entry per stage's predictor pool.
    public var predictors: [PredictorStatus]
    /// The shards-topic partitions this worker owns now (its consumer-group assignment). The
    /// controller re-enqueues and steals work into these partitions to reach this worker.
    /// Optional: nil (absent) from workers that do not report it; such a worker is never chosen
    /// as the target of a re-enqueue.
    public var partitions: [Int]?

    public init(
        job: String, worker: String, host: String, pid: Int, time: Int64 = Timestamp.now(),
        state: WorkerState = .running, inFlight: [InFlightShard] = [], queued: [String] = [],
        idle: Bool? = nil, samplesPerSecond: Double = 0, predictors: [PredictorStatus] = [],
        partitions: [Int]? = nil
    ) {
        self.job = job
        self.worker = worker
        self.host = host
        self.pid = pid
        self.time = time
        self.state = state
        self.inFlight = inFlight
        self.queued = queued
        self.idle = idle ?? (inFlight.isEmpty && queued.isEmpty)
        self.samplesPerSecond = samplesPerSecond.isFinite ? samplesPerSecond : 0
        self.predictors = predictors
        self.partitions = partitions
    }
}

/// What a worker is doing.
public enum WorkerState: String, Sendable, Hashable, Codable, CaseIterable {
    /// Taking and running shards.
    case running
    /// Finishing in-flight shards, taking no new ones, then exiting.
    case draining
    /// Exiting now; unfinished shards are abandoned (the controller re-enqueues them).
    case stopping
}

/// One shard execution in flight on a worker.
public struct InFlightShard: Sendable, Hashable, Codable {
    public var shard: String
    public var attempt: Int
    public var run: String
    /// Samples finished so far.
    public var done: Int
    /// Samples in the shard, when known.
    public var total: Int?
    /// When the execution started (epoch ms).
    public var startedAt: Int64

    public init(shard: String, attempt: Int, run: String, done: Int = 0, total: Int? = nil, startedAt: Int64) {
        self.shard = shard
        self.attempt = attempt
        self.run = run
        self.done = done
        self.total = total
        self.startedAt = startedAt
    }
}

/// The state of one stage's predictor pool on a worker.
public struct PredictorStatus: Sendable, Hashable, Codable {
    public var stage: String
    /// Processes running (for builtins: concurrent in-process slots).
    public var processes: Int
    /// Processes working on a batch now.
    public var busy: Int
    /// Processes restarted since the worker started (crashes, hangs).
    public var restarts: Int

    public init(stage: String, processes: Int, busy: Int = 0, restarts: Int = 0) {
        self.stage = stage
        self.processes = processes
        self.busy = busy
        self.restarts = restarts
    }
}
