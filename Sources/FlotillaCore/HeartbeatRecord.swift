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
    /// Shards this worker committed done (results, ack and offsets) since its previous heartbeat.
    /// The controller counts them as finished at once: on a broker that holds transactional acks
    /// back from read_committed readers while any transaction is open, the acks topic can lag the
    /// fleet by many seconds, and a lagging view must never look like lost work. Optional (v1).
    public var committed: [CommittedShard]?
    /// Per owned partition, the offset of the next record this worker will receive: a record
    /// below it was delivered. The final reconcile re-publishes only records an idle owner has
    /// moved past without finishing them. Optional (v1).
    public var positions: [PartitionPosition]?
    /// What the worker process has cost so far. Optional (v1).
    public var usage: WorkerUsage?
    /// Set in the last heartbeat of a worker that could not start (optional).
    public var failure: WorkerFailure?

    public init(
        job: String, worker: String, host: String, pid: Int, time: Int64 = Timestamp.now(),
        state: WorkerState = .running, inFlight: [InFlightShard] = [], queued: [String] = [],
        idle: Bool? = nil, samplesPerSecond: Double = 0, predictors: [PredictorStatus] = [],
        partitions: [Int]? = nil, committed: [CommittedShard]? = nil, positions: [PartitionPosition]? = nil,
        usage: WorkerUsage? = nil, failure: WorkerFailure? = nil
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
        self.committed = committed
        self.positions = positions
        self.usage = usage
        self.failure = failure
    }
}

/// A worker process's own cost since it started: CPU of the worker process alone (`getrusage`,
/// user + system, every thread; predictor child processes excluded, in-process builtins included)
/// and the work it finished (shards committed, their samples).
public struct WorkerUsage: Sendable, Hashable, Codable {
    public var cpuSeconds: Double
    public var samples: Int
    public var shards: Int

    public init(cpuSeconds: Double, samples: Int, shards: Int) {
        self.cpuSeconds = cpuSeconds.isFinite ? cpuSeconds : 0
        self.samples = samples
        self.shards = shards
    }

    /// CPU microseconds per finished sample (nil before the first).
    public var microsPerSample: Double? { samples > 0 ? cpuSeconds * 1e6 / Double(samples) : nil }
    /// CPU milliseconds per finished shard (nil before the first).
    public var millisPerShard: Double? { shards > 0 ? cpuSeconds * 1e3 / Double(shards) : nil }

    /// The sum of several workers' usage.
    public static func total(_ usages: some Sequence<WorkerUsage>) -> WorkerUsage? {
        var total: WorkerUsage?
        for usage in usages {
            total = WorkerUsage(cpuSeconds: (total?.cpuSeconds ?? 0) + usage.cpuSeconds,
                                samples: (total?.samples ?? 0) + usage.samples, shards: (total?.shards ?? 0) + usage.shards)
        }
        return total
    }
}

/// A shard execution a worker committed done.
public struct CommittedShard: Sendable, Hashable, Codable {
    public var shard: String
    public var attempt: Int
    public var run: String
    public var samples: Int
    /// Of them, error results (optional: absent from older workers).
    public var errorSamples: Int?

    public init(shard: String, attempt: Int, run: String, samples: Int, errorSamples: Int? = nil) {
        self.shard = shard
        self.attempt = attempt
        self.run = run
        self.samples = samples
        self.errorSamples = errorSamples
    }
}

/// Where a worker's consumer stands on one shards-topic partition.
public struct PartitionPosition: Sendable, Hashable, Codable {
    public var partition: Int
    /// The offset of the next record it will receive.
    public var next: Int64

    public init(partition: Int, next: Int64) {
        self.partition = partition
        self.next = next
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
    /// The devices the stage's processes hold (each process its own); nil for stages without.
    public var devices: [String]?

    public init(stage: String, processes: Int, busy: Int = 0, restarts: Int = 0, devices: [String]? = nil) {
        self.stage = stage
        self.processes = processes
        self.busy = busy
        self.restarts = restarts
        self.devices = devices
    }
}
