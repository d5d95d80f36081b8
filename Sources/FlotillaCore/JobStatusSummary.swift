/// The counts of a job: what `flotilla run --json` and `flotilla status --json` print and what a
/// finished job's manifest carries.
public struct JobStatusSummary: Sendable, Hashable, Codable {
    public var job: String
    /// Shards published (distinct shard ids, not attempts).
    public var shards: Int
    /// Shards with a committed done ack.
    public var done: Int
    /// Shards sent to the DLQ (failed `maxAttempts` times or undecodable).
    public var dead: Int
    /// Samples in done shards (their acks' `samples`).
    public var samples: Int
    /// Samples that ended as error results (their acks' `errorSamples`).
    public var failedSamples: Int
    /// Processing time in seconds: from the first shard execution's start to the moment the
    /// controller saw the job complete (every ack or dead letter read), so commits and the acks
    /// topic's lag count, and a submitted job that waited for a fleet does not.
    public var seconds: Double
    /// From submission (manifest `createdAt`) to that same moment, in seconds (optional: absent
    /// from summaries written before it existed).
    public var wallSeconds: Double?
    /// `samples / seconds` (0 when seconds is 0).
    public var samplesPerSecond: Double
    /// Shard attempts published after the first (worker lost, lease expired, retry, stolen, ...).
    public var reEnqueued: Int
    /// Done acks beyond the first per shard: executions whose results readers discard.
    public var duplicates: Int
    /// The fleet's own CPU: the worker processes' CPU summed over every worker that reported it,
    /// against the samples and shards they committed (optional).
    public var workerCPU: WorkerCPU?
    /// When the first shard execution started, the first shard's results were committed, and the
    /// controller saw the job complete (epoch ms; optional).
    public var startedAt: Int64?
    public var firstResultAt: Int64?
    public var completedAt: Int64?
    /// Why the job failed or ended above its error budget (optional).
    public var failure: JobFailure?
    /// The most common error results, most common first (optional).
    public var topErrors: [ErrorCount]?
    /// What the job cost the controller that finished it (optional).
    public var controller: ControllerCost?

    public init(
        job: String, shards: Int, done: Int, dead: Int, samples: Int, failedSamples: Int,
        seconds: Double, wallSeconds: Double? = nil, samplesPerSecond: Double? = nil, reEnqueued: Int = 0, duplicates: Int = 0,
        workerCPU: WorkerCPU? = nil, startedAt: Int64? = nil, firstResultAt: Int64? = nil, completedAt: Int64? = nil,
        failure: JobFailure? = nil, topErrors: [ErrorCount]? = nil
    ) {
        self.job = job
        self.shards = shards
        self.done = done
        self.dead = dead
        self.samples = samples
        self.failedSamples = failedSamples
        self.seconds = seconds.isFinite ? seconds : 0
        self.wallSeconds = wallSeconds.map { $0.isFinite ? $0 : 0 }
        let rate = samplesPerSecond ?? (seconds > 0 ? Double(samples) / seconds : 0)
        self.samplesPerSecond = rate.isFinite ? rate : 0
        self.reEnqueued = reEnqueued
        self.duplicates = duplicates
        self.workerCPU = workerCPU
        self.startedAt = startedAt
        self.firstResultAt = firstResultAt
        self.completedAt = completedAt
        self.failure = failure
        self.topErrors = topErrors
    }
}

/// The workers' CPU over a job (see ``WorkerUsage``): a regression in the framework's per-sample
/// cost shows in every run.
public struct WorkerCPU: Sendable, Hashable, Codable {
    public var seconds: Double
    public var microsPerSample: Double?
    public var millisPerShard: Double?

    public init(_ usage: WorkerUsage) {
        seconds = (usage.cpuSeconds * 1000).rounded() / 1000
        microsPerSample = usage.microsPerSample.map { ($0 * 100).rounded() / 100 }
        millisPerShard = usage.millisPerShard.map { ($0 * 1000).rounded() / 1000 }
    }
}

/// What a job cost the controller that finished it, counted from that controller's start: its own
/// CPU, its ticks, and how late the fleet's heartbeats were when it applied them (produced →
/// applied), so an operator can size a deployment from any run (docs/BENCHMARKS.md, cost model).
public struct ControllerCost: Sendable, Hashable, Codable {
    public var cpuSeconds: Double
    public var ticks: Int
    public var meanTickMs: Double
    public var maxTickMs: Double
    /// Worker heartbeats applied (replayed ones not counted).
    public var heartbeats: Int
    public var meanHeartbeatLagMs: Double
    public var maxHeartbeatLagMs: Double

    public init(cpuSeconds: Double, ticks: Int, meanTickMs: Double, maxTickMs: Double, heartbeats: Int,
                meanHeartbeatLagMs: Double, maxHeartbeatLagMs: Double) {
        func rounded(_ value: Double) -> Double { value.isFinite ? (value * 1000).rounded() / 1000 : 0 }
        self.cpuSeconds = rounded(cpuSeconds)
        self.ticks = ticks
        self.meanTickMs = rounded(meanTickMs)
        self.maxTickMs = rounded(maxTickMs)
        self.heartbeats = heartbeats
        self.meanHeartbeatLagMs = rounded(meanHeartbeatLagMs)
        self.maxHeartbeatLagMs = rounded(maxHeartbeatLagMs)
    }
}
