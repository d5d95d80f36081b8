import FlotillaCore

/// Where a shard stands, for status pages and tests.
public enum ShardPhase: String, Sendable, Hashable, Codable, CaseIterable {
    /// Published, waiting in Kafka (or in no queue the controller knows of).
    case pending
    /// In a live worker's local queue, not started.
    case queued
    /// A live worker executes it.
    case inFlight = "in-flight"
    /// Its latest attempt failed; a retry or a dead letter follows at the next tick.
    case failed
    case done
    case dead
}

/// One worker as the controller sees it.
public struct WorkerView: Sendable, Hashable, Codable {
    public var id: String
    public var pid: Int
    public var host: String
    public var state: String
    public var lost: Bool
    /// Milliseconds since its last heartbeat.
    public var lastHeartbeatAgoMs: Int64
    public var inFlight: [String]
    public var queued: Int
    public var idle: Bool
    public var partitions: [Int]
    public var samplesPerSecond: Double
    /// The worker process's own CPU per finished sample so far, in µs (nil before it reports one).
    public var cpuMicrosPerSample: Double?
    /// Its predictor pools, per stage: processes, busy ones, restarts.
    public var predictors: [PredictorStatus] = []
}

extension ShardLedger {
    /// The phase of a shard, nil when unknown.
    public func phase(of shard: String) -> ShardPhase? {
        guard let entry = shards[shard] else { return nil }
        let live = Set(workers.values.filter { !$0.lost }.map(\.id))
        return phase(entry, live: live, queued: Set(workers.values.filter { !$0.lost }.flatMap(\.queued)))
    }

    func phase(_ entry: ShardEntry, live: Set<String>, queued: Set<String>) -> ShardPhase {
        if entry.isDone { return .done }
        if entry.dead != nil { return .dead }
        if entry.isExecuting(live: live) { return .inFlight }
        if entry.failedAttempts[entry.latestAttempt] != nil { return .failed }
        if queued.contains(entry.id) { return .queued }
        return .pending
    }

    /// Shards per phase (every phase present, zero when none). Shards announced by the manifest
    /// but not seen yet count as pending.
    public var phaseCounts: [ShardPhase: Int] {
        let live = Set(workers.values.filter { !$0.lost }.map(\.id))
        let queued = Set(workers.values.filter { !$0.lost }.flatMap(\.queued))
        var counts = Dictionary(uniqueKeysWithValues: ShardPhase.allCases.map { ($0, 0) })
        // Finished shards are counted as they finish; only the open ones are looked at.
        counts[.done] = shards.totals.done
        counts[.dead] = shards.totals.dead
        for entry in shards.openEntries { counts[phase(entry, live: live, queued: queued), default: 0] += 1 }
        counts[.pending, default: 0] += max(0, (expectedShards ?? 0) - shards.count)
        return counts
    }

    /// The highest attempt published for a shard (-1 when none), and why.
    public func latestAttempt(of shard: String) -> (attempt: Int, reason: ShardReason?) {
        guard let entry = shards[shard] else { return (-1, nil) }
        return (entry.latestAttempt, entry.attempts[entry.latestAttempt]?.reason)
    }

    /// Failed or lost attempts of a shard (they count toward `maxAttempts`).
    public func failures(of shard: String) -> Int {
        shards[shard]?.failures ?? 0
    }

    /// Re-enqueued attempts (attempt > 0) by reason.
    public var reEnqueues: [String: Int] {
        Dictionary(uniqueKeysWithValues: shards.totals.reEnqueues.filter { $0.value > 0 }.map { ($0.key.rawValue, $0.value) })
    }

    /// Done acks beyond the first per shard: shards that ran twice to completion.
    public var duplicates: Int {
        shards.totals.duplicates
    }

    /// The run id of the shard's winning done ack, once read.
    public func winningRun(of shard: String) -> String? {
        shards[shard]?.winner?.run
    }

    /// Samples in done shards (their winning acks, or what their workers reported committed).
    public var samplesDone: Int {
        shards.totals.doneSamples
    }

    /// Error results in done shards, counted like `samplesDone`.
    public var failedSamplesDone: Int {
        shards.totals.errorSamples
    }

    /// Why the job must stop or end as failed under `faults.maxErrorRate`: judged once
    /// `FaultConfig.errorBudgetSamples` samples are done, or the whole job when it is smaller.
    public var errorBudgetFailure: JobFailure? {
        guard settings.maxErrorRate < 1 else { return nil }
        let failed = failedSamplesDone
        guard failed > 0 else { return nil }
        let done = samplesDone
        let judged = isComplete || done >= min(FaultConfig.errorBudgetSamples, expectedSamples ?? .max)
        guard judged, done > 0, Double(failed) > settings.maxErrorRate * Double(done) else { return nil }
        let percent = { (value: Double) in String(format: "%.0f %%", value * 100) }
        return JobFailure(kind: .errorBudget, message: "\(failed) of \(done) samples failed (\(percent(Double(failed) / Double(done)))), more than faults.maxErrorRate allows (\(percent(settings.maxErrorRate)))")
    }

    /// The most common errors of the done shards (their acks), most common first.
    public var topErrors: [ErrorCount] {
        ErrorCount.top(shards.values.lazy.compactMap(\.winner?.errors).joined().map { ($0.message, $0.count) }, limit: 5)
    }

    /// Samples of shards not done yet, where their records say (nil when some shard's size is unknown).
    public var samplesRemaining: Int? {
        var total = 0
        for entry in shards.openEntries {
            guard let samples = entry.samples else { return nil }
            total += samples
        }
        return total
    }

    /// Shards not finished yet and their samples (samples nil when some shard's size is unknown),
    /// in one pass: the autoscaler's backlog.
    public var backlog: (shards: Int, samples: Int?) {
        var shardCount = 0
        var samples: Int? = 0
        for entry in shards.openEntries {
            shardCount += 1
            samples = samples.flatMap { total in entry.samples.map { total + $0 } }
        }
        return (max(shardCount, (expectedShards ?? 0) - shards.count + shardCount), samples)
    }

    /// Dead-lettered shards by reason, the most common first (5 at most).
    public var deadReasons: [ErrorCount] {
        guard shards.totals.deadUnwon > 0 else { return [] }
        return ErrorCount.top(shards.values.lazy.filter { $0.winner == nil }.compactMap(\.dead).map { ($0, 1) }, limit: 5)
    }

    /// Live workers that run a shard now.
    public var busyWorkers: Int {
        workers.values.filter { !$0.lost && !$0.inFlight.isEmpty }.count
    }

    /// The workers, by id.
    public func workerViews(now: Int64) -> [WorkerView] {
        workers.values.sorted { $0.id < $1.id }.map { worker in
            WorkerView(id: worker.id, pid: worker.pid, host: worker.host, state: worker.lost ? "lost" : worker.state.rawValue,
                       lost: worker.lost, lastHeartbeatAgoMs: max(0, now - worker.lastSeen),
                       inFlight: worker.inFlight.map(\.shard), queued: worker.queued.count, idle: worker.idle,
                       partitions: worker.partitions ?? [], samplesPerSecond: worker.samplesPerSecond,
                       cpuMicrosPerSample: worker.usage?.microsPerSample.map { ($0 * 100).rounded() / 100 },
                       predictors: worker.predictors)
        }
    }

    /// Live workers' ids (heard from within `workerTimeout`).
    public var liveWorkers: [String] {
        workers.values.filter { !$0.lost }.map(\.id).sorted()
    }

    /// The job's counts now (the final summary once complete).
    public func summary(now: Int64) -> JobStatusSummary {
        let winners = shards.values.compactMap(\.winner)
        let dead = shards.values.filter { $0.winner == nil && $0.dead != nil }.count
        let samples = winners.reduce(0) { $0 + $1.samples }
        let failedSamples = winners.reduce(0) { $0 + $1.errorSamples }
        let start = winners.map(\.startedAt).min()
        let seconds = start.map { Double(max(0, now - $0)) / 1_000 } ?? 0
        let wallSeconds = createdAt.map { Double(max(0, now - $0)) / 1_000 }
        return JobStatusSummary(
            job: job, shards: max(expectedShards ?? 0, shards.count), done: winners.count, dead: dead,
            samples: samples, failedSamples: failedSamples, seconds: seconds, wallSeconds: wallSeconds,
            reEnqueued: reEnqueues.values.reduce(0, +), duplicates: duplicates,
            workerCPU: WorkerUsage.total(workers.values.compactMap(\.usage)).map(WorkerCPU.init),
            startedAt: start, firstResultAt: winners.map(\.finishedAt).min(), completedAt: isComplete ? now : nil,
            failure: errorBudgetFailure, topErrors: failedSamples > 0 ? topErrors : nil)
    }

    /// The earliest time a worker reported committing a shard whose ack no committed read has
    /// shown yet; nil when every reported commit is settled. Long ago means the acks topic is
    /// held (see `ControllerService.checkHeldAcks`).
    public var oldestUnsettledCommit: Int64? {
        shards.unsettled.lazy.compactMap { shards[$0]?.committedAt }.min()
    }
}

extension ShardLedger {
    /// Whether `worker` heartbeats and is not judged lost.
    public func isLive(_ worker: String) -> Bool { workers[worker].map { !$0.lost } ?? false }
}
