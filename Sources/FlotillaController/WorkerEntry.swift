import FlotillaCore

/// What the ledger knows of one worker.
struct WorkerEntry: Sendable, Hashable {
    let id: String
    var pid = 0
    var host = ""
    var state: WorkerState = .running
    /// When its last heartbeat was received (controller clock).
    var lastSeen: Int64 = .min
    /// Its last heartbeat's own time.
    var heartbeatTime: Int64 = .min
    var inFlight: [ShardAttempt] = []
    var queued: [String] = []
    var idle = false
    var partitions: [Int]?
    /// Shards-topic partition → the offset of the next record it will receive (from heartbeats).
    var positions: [Int: Int64] = [:]
    var samplesPerSecond = 0.0
    /// The worker's own cost so far, from its last heartbeat that reported it.
    var usage: WorkerUsage?
    /// Its predictor pools, from its last heartbeat.
    var predictors: [PredictorStatus] = []
    /// Smoothed samples per second while busy (0 until measured).
    var rate = 0.0
    var lost = false
    var lostAt: Int64?
    /// Asked to drain or stop: not replaced when it goes silent.
    var retiring = false
    /// Since when it has reported idle (nil while busy).
    var idleSince: Int64?
    /// Since when it has reported its current partitions.
    var partitionsSince: Int64 = .max
    /// Work was just sent to it: not idle again before this time.
    var stealBlockedUntil: Int64 = 0

    init(id: String) { self.id = id }
}

/// A shard the warm start told a worker to take.
struct WarmTake: Sendable, Hashable {
    var worker: String
    var attempt: Int
    var at: Int64
}
