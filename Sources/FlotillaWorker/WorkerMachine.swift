import FlotillaCore
import FlotillaKafka

/// The worker's rules as a value: what it holds, what it starts next, what it publishes and
/// commits, and when it stops. Facts go in (records received, partitions assigned or revoked,
/// shards finished, publishes done, commands); decisions come out. No I/O and no clock: the
/// `Worker` shell feeds it and carries the decisions out, so every rule is tested without a broker.
struct WorkerMachine: Sendable {
    enum Phase: Sendable, Equatable {
        case running
        /// Finishing what runs and waits to be published; taking and starting nothing new.
        case draining
        /// Stopping now, for this reason.
        case stopping(WorkerExit)
    }

    /// What the scheduler does next.
    enum Next: Sendable, Equatable {
        case start(QueuedShard, run: String)
        /// Done elsewhere, superseded or taken by another worker: released unrun.
        case skip(QueuedShard, reason: String)
        /// Nothing to start now: wait for a change.
        case wait
        /// Drained or stopped: the scheduler ends.
        case stop
    }

    /// Shards processed at once.
    private(set) var slots: Int
    /// Shards held (queued and running) at most; the intake polls only for the room left.
    private(set) var holdLimit: Int
    /// Finished shards per transaction at most: one commit costs a few milliseconds whatever it
    /// holds. 64 instead of 16 saved about a third of a worker's CPU on 10-sample shards.
    let publishBatch: Int
    /// Result bytes per transaction at most (a shard with more travels alone), and held unpublished
    /// before the intake pauses: what bounds the memory of finished shards. 4 MiB: with 16 MiB and
    /// 64-shard transactions, a worker's peak RSS grew from 55 to 76 MiB (`tools/bench/memory`).
    let publishBytes: Int
    /// How long a finished shard waits for others, while more run, to share its transaction: a
    /// transaction costs the worker ~80 thread switches in librdkafka whatever it holds, and one
    /// per shard was a fifth of a fast model's worker CPU (measured, 1.3 shards per transaction).
    /// 250 ms instead of 50 saved ~10 % of a fast model's worker CPU; finished shards stay in
    /// flight in the heartbeats meanwhile, so a worker lost while holding them has them re-enqueued.
    let publishLinger: Duration

    private(set) var phase: Phase = .running
    private(set) var queue: [QueuedShard] = []
    private(set) var running: [String: RunningShard] = [:]
    var finished: [FinishedShard] = []
    /// In a transaction now: still in flight for the controller.
    var publishing: [FinishedShard] = []
    /// Copies of an attempt that runs or waits to be published here, set aside until that one ends.
    private(set) var held: [QueuedShard] = []
    /// Done shards committed since the last heartbeat (the heartbeat reports and clears them).
    var committed: [CommittedShard] = []
    /// Per assigned partition, the offset after the last record received.
    private(set) var positions: [TopicPartition: Int64] = [:]
    private(set) var assigned: Set<TopicPartition> = []
    var offsets = OffsetTracker()
    /// Samples published since the last heartbeat.
    var samplesSinceHeartbeat = 0
    /// Shards and samples published since the worker started.
    var shardsDone = 0
    var samplesDone = 0
    /// Transactions committed since the last settle transaction (`SettleRecord`), and whether the
    /// controller asked for one.
    var unsettled = false
    var settleAsked = false
    /// The settle transaction or offset commit in flight, if any: the worker commits one thing
    /// at a time (a transaction, a settle, or the offsets of released records).
    var committing: KafkaCommit?
    /// When released records' offsets were last committed (they go at most once a second).
    var offsetsCommittedAt: ContinuousClock.Instant?
    /// A record was released (skipped, dead-lettered, abandoned) since offsets were last committed.
    var releasedSinceCommit = false
    /// The controller should hear from this worker before its next beat is due: it took
    /// partitions or shards, or published while it owns no partitions (the warm start then
    /// hands out more), or it stops.
    var heartbeatWanted = false
    /// The worker went idle after publishing: the controller should hear soon (it may steal for
    /// it), though not as urgently.
    var idleBeatWanted = false

    init(slots: Int, holdLimit: Int, publishBatch: Int = 64, publishBytes: Int = 4 << 20, publishLinger: Duration = .milliseconds(250)) {
        self.slots = max(1, slots)
        self.holdLimit = max(1, holdLimit)
        self.publishBatch = max(1, publishBatch)
        self.publishBytes = max(1, publishBytes)
        self.publishLinger = publishLinger
    }

    /// Sets the sizes once the worker knows its stages (a drain or stop asked before stays).
    mutating func configure(slots: Int, holdLimit: Int) {
        self.slots = max(1, slots)
        self.holdLimit = max(1, holdLimit)
    }

    var isStopping: Bool { if case .stopping = phase { true } else { false } }
    var exit: WorkerExit? { if case .stopping(let exit) = phase { exit } else { nil } }

    // MARK: intake

    /// Records the intake may take now. Finished shards waiting for the committer count too,
    /// beyond a transaction's worth: what a worker holds unpublished is what a rebalance makes
    /// another redo, and what it keeps in memory (none taken while over `publishBytes`).
    var room: Int {
        guard phase == .running else { return 0 }
        if unpublishedBytes > publishBytes { return 0 }
        let unpublished = max(0, finished.count + publishing.count - publishBatch)
        return holdLimit - queue.count - running.count - unpublished
    }

    /// The result bytes of the finished shards not yet published.
    var unpublishedBytes: Int { Self.resultBytes(of: finished) + Self.resultBytes(of: publishing) }

    /// By index: `reduce` copied each shard out (a retain and release of everything it holds).
    static func resultBytes(of shards: [FinishedShard]) -> Int {
        var total = 0
        for index in shards.indices { total += shards[index].resultBytes }
        return total
    }

    /// A record arrived from the group at `offset` of `partition` (before it is decoded).
    mutating func received(_ partition: TopicPartition, offset: Int64) {
        offsets.received(partition, offset)
        positions[partition] = max(positions[partition] ?? 0, offset + 1)
    }

    /// A decoded shard record, queued to run.
    mutating func enqueue(_ shard: QueuedShard) {
        queue.append(shard)
    }

    /// The record at `offset` needs no results from here (dead-lettered, skipped, superseded):
    /// its offset may be committed.
    mutating func release(_ partition: TopicPartition, offset: Int64) {
        offsets.finished(partition, offset)
        releasedSinceCommit = true
    }

    /// The group assigned these partitions. The controller hears of it at once, not at the next
    /// beat: it warm-starts only while no worker owns partitions, and each beat it does not know
    /// of this assignment risks a take that races this worker's own group copy.
    mutating func assign(_ partitions: [TopicPartition]) {
        assigned.formUnion(partitions)
        heartbeatWanted = true
    }

    /// Partitions this worker no longer owns: their queued records go (the new owner reads them),
    /// their running shards are abandoned, and their offsets are forgotten. Their finished shards
    /// are still published — results and ack, not the offsets — so the new owner skips them
    /// instead of redoing them.
    mutating func revoke(_ partitions: [TopicPartition]) {
        let lost = Set(partitions)
        queue.removeAll { lost.contains($0.partition) && !$0.taken }
        held.removeAll { lost.contains($0.partition) && !$0.taken }
        for (run, shard) in running where lost.contains(shard.queued.partition) && !shard.queued.taken {
            running[run]!.abandoned = true
        }
        offsets.remove(partitions)
        for partition in partitions { positions[partition] = nil }
        assigned.subtract(lost)
    }

    /// Shards the controller named (`take`): express ones first and allowed a slot beyond the
    /// rest, warm-start ones last. Returns those that were not here already.
    mutating func take(_ shards: [QueuedShard], express: Bool) -> [QueuedShard] {
        let fresh = shards.filter { !holds($0.record) }.map { shard in
            var taken = shard
            taken.taken = true
            taken.express = express
            return taken
        }
        if express { queue.insert(contentsOf: fresh, at: 0) } else { queue.append(contentsOf: fresh) }
        if !fresh.isEmpty { heartbeatWanted = true }  // the controller sees them queued here at once
        return fresh
    }

    /// Releases queued and held records that `skipReason` now skips (their shard got done or
    /// superseded while they waited). Returns how many.
    mutating func dropStale(_ skipReason: (ShardRecord) -> String?) -> Int {
        func isStale(_ shard: QueuedShard) -> Bool { skipReason(shard.record) != nil }
        // Asked for every batch of ledger records: usually nothing is stale, and nothing is copied.
        guard queue.contains(where: isStale) || held.contains(where: isStale) else { return 0 }
        let stale = queue.filter(isStale) + held.filter(isStale)
        queue.removeAll(where: isStale)
        held.removeAll(where: isStale)
        for shard in stale { release(shard) }
        return stale.count
    }

    // MARK: commands

    /// Finish what runs, take nothing new, then stop. Group records still queued are let go
    /// unrun: their offsets are never committed, so the partition's next owner reads them again
    /// (the controller re-enqueues nothing). Shards the controller handed over (`take`: the express
    /// lane, the warm start) still run: their owners skip them.
    mutating func drain() {
        guard phase == .running else { return }
        phase = .draining
        queue.removeAll { !$0.taken }
        held.removeAll { !$0.taken }
    }

    /// Stop at once (the first reason stays).
    mutating func stop(_ exit: WorkerExit) {
        if !isStopping { phase = .stopping(exit) }
        heartbeatWanted = true
    }

    /// Abandons the running executions of `shard` (of `attempt`, or every attempt); their records
    /// are released. Returns whether one was running.
    mutating func abandon(shard: String, attempt: Int?) -> Bool {
        var found = false
        for (run, execution) in running where execution.queued.record.shard == shard
            && (attempt == nil || execution.queued.record.attempt == attempt) {
            running[run]!.abandoned = true
            release(execution.queued)
            found = true
        }
        return found
    }

    // MARK: scheduling

    /// The scheduler's next move. `skipReason` is the ledger's (done, superseded, taken elsewhere);
    /// `newRun` names an execution.
    mutating func next(skipReason: (ShardRecord) -> String?, newRun: () -> String, now: Int64) -> Next {
        switch phase {
        case .stopping: return .stop
        case .draining:
            if running.isEmpty && finished.isEmpty && publishing.isEmpty && queue.isEmpty && held.isEmpty {
                phase = .stopping(.finished("drained"))
                return .stop
            }
            if queue.isEmpty { return .wait }
        case .running: break
        }
        while let shard = queue.first {
            if let reason = skipReason(shard.record) {
                queue.removeFirst()
                release(shard)
                return .skip(shard, reason: reason)
            }
            if holdsCopy(of: shard.record) {
                // Another copy of this attempt runs or waits here: once it is published this one
                // is skipped; if it fails, this one runs.
                held.append(queue.removeFirst())
                continue
            }
            // An express (recovered) shard may use one slot beyond the rest: it should not wait for a slot.
            guard running.count < slots + (shard.express ? 1 : 0) else { return .wait }
            queue.removeFirst()
            let run = newRun()
            running[run] = RunningShard(queued: shard, run: run, startedAt: now)
            return .start(shard, run: run)
        }
        return .wait
    }

    mutating func progress(run: String, done: Int) {
        running[run]?.done = done
    }

    /// Whether execution `run` should stop: abandoned, revoked, or the worker stops.
    func isAbandoned(_ run: String) -> Bool {
        guard let execution = running[run] else { return true }
        return execution.abandoned || isStopping
    }

    /// Execution `run` ended: `shard` (its results and ack) waits to be published, unless the
    /// execution was abandoned or there is nothing to publish (nil). Held copies of it are back
    /// in the queue when nothing of it is left here.
    mutating func finish(run: String, _ shard: FinishedShard?) {
        guard let execution = running.removeValue(forKey: run) else { return }
        if let shard, !execution.abandoned {
            finished.append(shard)
        } else {
            requeueHeld(of: execution.queued.record)
        }
    }

    // MARK: private

    /// An express copy marks the group copy at the same offset, if this worker holds it: both
    /// are the same attempt, skipped for the same reason.
    private mutating func release(_ shard: QueuedShard) {
        release(shard.partition, offset: shard.offset)
    }

    /// Whether this attempt is queued, running or unpublished here.
    private func holds(_ record: ShardRecord) -> Bool {
        queue.contains { $0.record.isSameAttempt(as: record) } || holdsCopy(of: record)
    }

    /// Whether this attempt runs or waits to be published here.
    private func holdsCopy(of record: ShardRecord) -> Bool {
        running.values.contains { !$0.abandoned && $0.queued.record.isSameAttempt(as: record) }
            || Self.holdsCopy(of: record, in: finished) || Self.holdsCopy(of: record, in: publishing)
    }

    /// Through a buffer pointer: a closure per array element copied each shard out.
    private static func holdsCopy(of record: ShardRecord, in shards: [FinishedShard]) -> Bool {
        shards.withUnsafeBufferPointer { buffer in
            buffer.indices.contains { buffer[$0].ack.shard == record.shard && buffer[$0].ack.attempt == record.attempt }
        }
    }

    mutating func requeueHeld(of record: ShardRecord) {
        requeueHeld { $0.isSameAttempt(as: record) }
    }

    mutating func requeueHeld(of ack: AckRecord) {
        requeueHeld { $0.shard == ack.shard && $0.attempt == ack.attempt }
    }

    private mutating func requeueHeld(_ matches: (ShardRecord) -> Bool) {
        let back = held.filter { matches($0.record) }
        guard !back.isEmpty else { return }
        held.removeAll { matches($0.record) }
        queue.insert(contentsOf: back, at: 0)
    }
}

extension ShardRecord {
    /// The same shard and attempt.
    func isSameAttempt(as other: ShardRecord) -> Bool { shard == other.shard && attempt == other.attempt }
}
