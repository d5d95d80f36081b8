import FlotillaCore

/// The controller's per-shard ledger: a pure value type fed with the job's records and a clock,
/// asked for actions by `tick(now:)`.
///
/// Its state is derived from facts (published attempts, acks, heartbeats, dead letters), never
/// from the order they arrive in, so replaying the job's topics in any interleaving rebuilds the
/// same ledger, and feeding a record twice changes nothing. Times are epoch milliseconds.
///
/// A shard is *done* at its first done ack (any attempt or run) and is never re-enqueued after;
/// *dead* once dead-lettered; otherwise in flight (a live worker executes its latest attempt),
/// queued (a live worker holds it, not started), failed (its latest attempt failed, not yet
/// retried) or pending (published, waiting in Kafka).
public struct ShardLedger: Sendable, Hashable {
    /// The job id (written into re-enqueued shard records).
    public let job: String
    public let settings: LedgerSettings

    /// Shard ids → what is known of each (with the open ones and totals kept up to date).
    var shards = ShardTable()
    /// Shards handed out by the warm start: shard → the worker told to take it, and when.
    var warmTakes: [String: WarmTake] = [:]
    /// Worker ids → their last heartbeat and liveness.
    var workers: [String: WorkerEntry] = [:]
    /// Shards the job has (`JobManifest.shards`), once the manifest is known.
    public private(set) var expectedShards: Int?
    /// Samples the job has (`JobManifest.samples`), once the manifest is known.
    public private(set) var expectedSamples: Int?
    /// When the job was submitted (manifest `createdAt`).
    public private(set) var createdAt: Int64?
    /// An open job (`mode: open`) ends only once closed, and not before the shards topic has
    /// been quiet for `quietAfterCloseMs` after the close (see `isHeldOpen`).
    public private(set) var isOpen = false
    /// When the job was closed (the close command's time).
    public private(set) var closedAt: Int64?
    /// When the controller last read a shard it did not know (epoch ms, its own clock).
    public private(set) var lastNewShardAt: Int64?
    /// Whether `complete` was emitted.
    public internal(set) var completed = false
    /// Workers this ledger asked to replace.
    public internal(set) var replacements = 0
    /// Shards-topic partitions last owned by a worker now lost and not yet owned by a live one.
    var orphanedPartitions: Set<Int> = []
    /// The send time of the controller's latest own heartbeat read back, and when it was read:
    /// the view of the topics is complete up to then (see `judgedTime`).
    public private(set) var viewTime: Int64?
    var viewReadAt: Int64?
    /// How late heartbeats reach the ledger (sent → applied, smoothed, ms): a busy broker delays
    /// every tail, and balancing must not act on a view older than the work it would move.
    public private(set) var heartbeatLagMs: Double = 0
    /// The largest of those lags lately: stealing by a short window needs it small (`reachedFirst`).
    private(set) var recentLags = LagWindow()
    /// When this controller started watching (epoch ms): silence from before is not a fault of
    /// the shards (see `markLost`). Nil: every loss is charged (tests, simulations).
    public var watchingSince: Int64?

    public init(job: String, settings: LedgerSettings) {
        self.job = job
        self.settings = settings
    }

    // MARK: - Records

    /// The job's manifest: how many shards to expect and when the job started.
    public mutating func apply(manifest: JobManifest) {
        expectedShards = manifest.shards
        expectedSamples = manifest.samples
        createdAt = manifest.createdAt
        isOpen = manifest.config.mode == .open
    }

    /// A `close` command for this open job, sent at `time`.
    public mutating func close(at time: Int64) {
        closedAt = min(closedAt ?? time, time)
    }

    /// Whether an open job must stay open at `now`: not closed, or closed so recently that a shard
    /// published just before the close may still be on its way to this controller's reader.
    public func isHeldOpen(now: Int64) -> Bool {
        guard isOpen else { return false }
        guard let closedAt else { return true }
        return now - max(closedAt, lastNewShardAt ?? 0) < quietAfterCloseMs
    }

    /// Two heartbeat intervals, at least a second: many fetch waits of the shards reader.
    var quietAfterCloseMs: Int64 { max(1_000, 2 * settings.heartbeatMs) }

    /// A shard record read from the shards topic at `partition`/`offset` (nil when unknown).
    /// `receivedAt`: when it was read (the open job's close waits for new shards to stop arriving).
    public mutating func apply(shard record: ShardRecord, partition: Int? = nil, offset: Int64? = nil, receivedAt: Int64? = nil) {
        if shards[record.shard] == nil, let receivedAt { lastNewShardAt = receivedAt }
        var entry = shards[record.shard] ?? ShardEntry(id: record.shard)
        if record.attempt >= entry.latestAttempt {
            entry.source = record.source
            entry.samples = record.samples ?? entry.samples
        }
        var attempt = entry.attempts[record.attempt]
            ?? AttemptInfo(reason: record.reason, partition: partition, offset: offset, publishedAt: record.createdAt)
        // The record read back from Kafka names where it really landed.
        attempt.partition = partition ?? attempt.partition
        attempt.offset = offset ?? attempt.offset
        entry.attempts[record.attempt] = attempt
        shards[record.shard] = entry
    }

    /// A shards-topic record that cannot be decoded: the shard (its key) can never run.
    public mutating func applyUndecodableShard(_ shard: String, reason: String) {
        var entry = shards[shard] ?? ShardEntry(id: shard)
        if entry.winner == nil, entry.dead == nil { entry.dead = reason }
        shards[shard] = entry
    }

    /// An ack from the acks topic.
    public mutating func apply(ack: AckRecord) {
        var entry = shards[ack.shard] ?? ShardEntry(id: ack.shard)
        switch ack.status {
        case .done:
            entry.doneRuns.insert(ack.run)
            // The first done ack in the (single-partition) acks topic wins, as for `ResultLedger`.
            if entry.winner == nil { entry.winner = ack }
        case .failed:
            entry.failedAttempts[ack.attempt] = FailedAttempt(error: ack.error ?? "failed without a reason", worker: ack.worker)
            entry.failedRuns.insert(ack.run)
        }
        entry.executions[ack.run] = nil
        shards[ack.shard] = entry
    }

    /// A control record: `supersede` raises the attempt below which records are stale.
    public mutating func apply(control: ControlRecord) {
        guard control.command == .supersede, let shard = control.shard, let attempt = control.attempt else { return }
        var entry = shards[shard] ?? ShardEntry(id: shard)
        entry.supersededBelow = max(entry.supersededBelow, attempt)
        shards[shard] = entry
    }

    /// A dead letter: the shard is dead (unless it is already done).
    public mutating func apply(deadLetter: DeadLetterRecord) {
        guard let shard = deadLetter.shard else { return }
        var entry = shards[shard] ?? ShardEntry(id: shard)
        if entry.dead == nil { entry.dead = deadLetter.reason }
        shards[shard] = entry
    }

    /// A heartbeat, seen at `receivedAt` (when replaying: its own time, at most now).
    public mutating func apply(heartbeat: HeartbeatRecord, receivedAt: Int64) {
        var worker = workers[heartbeat.worker] ?? WorkerEntry(id: heartbeat.worker)
        // A heartbeat no newer than the one we have (replayed twice, or out of order) says nothing new.
        if heartbeat.time <= worker.heartbeatTime { return }
        let previousRuns = worker.inFlight
        if worker.lost, receivedAt > (worker.lostAt ?? .max) {
            worker.lost = false  // it came back (paused, not dead): a zombie that may still ack
            worker.lostAt = nil
        }
        worker.lastSeen = max(worker.lastSeen, receivedAt)
        let lag = Double(max(0, receivedAt - heartbeat.time))
        heartbeatLagMs = heartbeatLagMs == 0 ? lag : 0.8 * heartbeatLagMs + 0.2 * lag
        recentLags.add(lag, at: receivedAt)
        worker.heartbeatTime = heartbeat.time
        worker.pid = heartbeat.pid
        worker.host = heartbeat.host
        worker.state = heartbeat.state
        worker.queued = heartbeat.queued
        // How long it has been idle with the same partitions: the final reconcile trusts only a
        // worker that owned a partition, and had nothing to do, for a while.
        if !heartbeat.idle || heartbeat.state != .running {
            worker.idleSince = nil
        } else if worker.idleSince == nil {
            worker.idleSince = receivedAt
        }
        if heartbeat.partitions != worker.partitions { worker.partitionsSince = receivedAt }
        worker.idle = heartbeat.idle
        worker.partitions = heartbeat.partitions
        worker.samplesPerSecond = heartbeat.samplesPerSecond
        if let usage = heartbeat.usage { worker.usage = usage }
        worker.predictors = heartbeat.predictors
        // A smoothed rate of the worker while it works (an idle worker reports 0): stealing
        // splits a backlog between thief and donor in proportion to their rates.
        if !heartbeat.idle, heartbeat.samplesPerSecond > 0 {
            worker.rate = worker.rate == 0 ? heartbeat.samplesPerSecond : 0.7 * worker.rate + 0.3 * heartbeat.samplesPerSecond
        }
        worker.inFlight = heartbeat.inFlight.map { ShardAttempt(shard: $0.shard, attempt: $0.attempt, run: $0.run) }
        if let positions = heartbeat.positions {
            worker.positions = Dictionary(positions.map { ($0.partition, $0.next) }, uniquingKeysWith: max)
        }
        if !worker.idle || worker.state != .running { worker.stealBlockedUntil = 0 }
        workers[heartbeat.worker] = worker
        if let partitions = heartbeat.partitions { orphanedPartitions.subtract(partitions) }

        // Committed executions are done now, whenever their acks become visible.
        for committed in heartbeat.committed ?? [] {
            var entry = shards[committed.shard] ?? ShardEntry(id: committed.shard)
            entry.committedRuns[committed.run] = committed
            entry.committedAt = entry.committedAt ?? receivedAt
            entry.executions[committed.run] = nil
            shards[committed.shard] = entry
        }
        // Executions: progress of the ones reported, and the ones no longer reported are over.
        let reported = Set(heartbeat.inFlight.map(\.run))
        for previous in previousRuns where !reported.contains(previous.run) {
            shards[previous.shard]?.executions[previous.run] = nil
        }
        for shard in heartbeat.inFlight {
            var entry = shards[shard.shard] ?? ShardEntry(id: shard.shard)
            if entry.doneRuns.contains(shard.run) || entry.failedRuns.contains(shard.run) || entry.committedRuns[shard.run] != nil {
                shards[shard.shard] = entry
                continue  // already acked: a heartbeat sent before the ack
            }
            var execution = entry.executions[shard.run]
                ?? Execution(worker: heartbeat.worker, attempt: shard.attempt, done: shard.done, total: shard.total,
                             startedAt: shard.startedAt, firstSeen: receivedAt, lastProgressAt: receivedAt)
            if shard.done > execution.done {
                execution.done = shard.done
                execution.lastProgressAt = receivedAt
            }
            execution.total = shard.total ?? execution.total
            entry.executions[shard.run] = execution
            shards[shard.shard] = entry
        }
    }

    /// A worker known to be gone now (its process exited or was killed): treat it as lost at once
    /// instead of waiting for `workerTimeout`. Returns the re-enqueues this causes.
    public mutating func workerGone(_ worker: String, now: Int64) -> [LedgerAction] {
        guard let entry = workers[worker], !entry.lost else { return [] }
        var actions: [LedgerAction] = []
        var plan = TargetPlan(ledger: self, now: now)
        markLost(worker, now: now, replace: false, plan: &plan, actions: &actions)
        return actions
    }

    /// The controller read back its own heartbeat sent at `sentAt`: every heartbeat sent before
    /// it has been read. After a gap in these reads (the broker unreachable or paused), the gap
    /// is forgiven like a controller stall, so that nobody is judged on heartbeats that could
    /// not arrive.
    public mutating func viewComplete(upTo sentAt: Int64, now: Int64) {
        if let viewReadAt, now - viewReadAt > 2 * settings.heartbeatMs {
            controllerStalled(for: now - viewReadAt - settings.heartbeatMs, now: now)
        }
        viewTime = max(viewTime ?? sentAt, sentAt)
        viewReadAt = now
    }

    /// The time the rules judge silence and progress at: now, or a heartbeat interval past the
    /// controller's view of the topics when that lags (a broker outage, a slow broker). A view
    /// frozen by an outage makes nobody lost; a lagging one delays detection by the lag.
    public func judgedTime(_ now: Int64) -> Int64 {
        guard let viewTime else { return now }
        return min(now, viewTime + settings.heartbeatMs)
    }

    /// The controller itself was stalled for `milliseconds` (suspended, starved of CPU): the
    /// heartbeats it could not read in that time must not make live workers look lost, nor
    /// their shards look hung. Shifts every live worker's last heartbeat and progress by the stall.
    public mutating func controllerStalled(for milliseconds: Int64, now: Int64) {
        guard milliseconds > 0 else { return }
        for (id, worker) in workers where !worker.lost {
            workers[id]?.lastSeen = min(now, worker.lastSeen + milliseconds)
            for running in worker.inFlight {
                if let execution = shards[running.shard]?.executions[running.run] {
                    shards[running.shard]?.executions[running.run]?.lastProgressAt = min(now, execution.lastProgressAt + milliseconds)
                }
            }
        }
    }

    /// Marks a worker as asked to drain or stop: when it goes silent it is not replaced.
    public mutating func retire(_ worker: String) {
        guard var entry = workers[worker] else { return }
        entry.retiring = true
        workers[worker] = entry
    }

    /// A new process starts as `worker`: the fleet reuses a free id ("w1" again after scaling to
    /// zero), and the new process is not retiring whatever its predecessor was (a stale flag kept
    /// it out of the warm start: 12 s instead of 1 s to a shard's results after scaling from zero).
    public mutating func workerStarting(_ worker: String) {
        workers[worker]?.retiring = false
    }

    /// Counts a pod replacement that the fleet did on its own (a worker exited).
    public mutating func countReplacement() {
        replacements += 1
    }
}

// MARK: - Entries

/// What the ledger knows of one shard.
struct ShardEntry: Sendable, Hashable {
    let id: String
    /// The shard's source and size, from its latest record (nil until a record is seen).
    var source: ShardSource?
    var samples: Int?
    /// Published attempts.
    var attempts: [Int: AttemptInfo] = [:]
    /// Attempts below this one are superseded (from control `supersede` records).
    var supersededBelow = 0
    /// Attempts that failed (acks with status failed).
    var failedAttempts: [Int: FailedAttempt] = [:]
    /// Runs acked done (more than one: duplicates).
    var doneRuns: Set<String> = []
    /// Runs acked failed.
    var failedRuns: Set<String> = []
    /// The winning done ack.
    var winner: AckRecord?
    /// Runs their workers reported committed done, before or after their acks are visible in
    /// the acks topic.
    var committedRuns: [String: CommittedShard] = [:]
    /// When a worker first reported it committed (receive time).
    var committedAt: Int64?
    /// Why it was dead-lettered.
    var dead: String?
    /// Live executions, by run id.
    var executions: [String: Execution] = [:]

    init(id: String) { self.id = id }

    /// The highest published attempt, -1 when no record was seen.
    var latestAttempt: Int { attempts.keys.max() ?? -1 }
    /// Done: acked, or committed by its worker (the ack may not be visible yet).
    var isDone: Bool { winner != nil || !committedRuns.isEmpty }
    /// Samples and error results of the done execution: its ack's, else what its worker reported.
    var doneSamples: (samples: Int, errors: Int) {
        if let winner { return (winner.samples, winner.errorSamples) }
        guard let committed = committedRuns.values.max(by: { $0.samples < $1.samples }) else { return (0, 0) }
        return (committed.samples, committed.errorSamples ?? 0)
    }
    /// Nothing more to run: done or dead. Every re-enqueue rule skips finished shards.
    var isFinished: Bool { isDone || dead != nil }
    /// Settled in the topics: its winning ack or its dead letter has been read (completion waits for this).
    var isSettled: Bool { winner != nil || dead != nil }

    /// Attempts published because an earlier one failed or was lost (they count toward maxAttempts).
    var failures: Int {
        attempts.values.filter { $0.reason.countsAsFailure }.count
    }

    /// The error of the latest failed attempt.
    var lastError: String? {
        failedAttempts.keys.max().flatMap { failedAttempts[$0]?.error }
    }

    /// Whether a live worker executes an attempt that is not superseded.
    func isExecuting(live: Set<String>) -> Bool {
        executions.values.contains { $0.attempt >= supersededBelow && live.contains($0.worker) }
    }
}

/// One published attempt of a shard.
struct AttemptInfo: Sendable, Hashable {
    var reason: ShardReason
    var partition: Int?
    var offset: Int64?
    var publishedAt: Int64
}

/// An attempt that ended with a failed ack.
struct FailedAttempt: Sendable, Hashable {
    var error: String
    var worker: String
}

/// One execution of a shard on a worker, from heartbeats.
struct Execution: Sendable, Hashable {
    var worker: String
    var attempt: Int
    var done: Int
    var total: Int?
    var startedAt: Int64
    var firstSeen: Int64
    var lastProgressAt: Int64
}

/// (shard, attempt, run) of a worker's in-flight shard.
struct ShardAttempt: Sendable, Hashable {
    var shard: String
    var attempt: Int
    var run: String
}

extension ShardReason {
    /// Whether an attempt published for this reason means the previous one failed.
    var countsAsFailure: Bool {
        self == .workerLost || self == .leaseExpired || self == .retry
    }
}
