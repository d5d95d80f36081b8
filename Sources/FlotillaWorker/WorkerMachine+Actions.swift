import FlotillaCore
import FlotillaKafka

/// A commit to Kafka other than a transaction of finished shards.
enum KafkaCommit: Sendable, Equatable {
    /// An empty transaction (`SettleRecord`).
    case settle
    /// The offsets of released records, outside a transaction.
    case offsets
}

/// What the machine asks the shell to do.
enum WorkerAction: Sendable {
    case start(QueuedShard, run: String)
    /// Done elsewhere, superseded or taken by another worker: released unrun (nothing to do but log).
    case skip(QueuedShard, reason: String)
    /// Publish these shards' results and acks in one transaction; the shell asks
    /// `offsetsToCommit` again on every try and reports `published` (or a failure).
    case publish([FinishedShard])
    /// Commit a settle transaction (`asked`: by the controller, else because the worker is idle);
    /// the shell reports `settled`.
    case settle(asked: Bool)
    /// Commit these offsets of released records; the shell reports `offsetsCommitted`.
    case commitOffsets([TopicPartitionOffset])
}

extension WorkerMachine {
    /// Released records' offsets are committed at most this often: they only save the next owner
    /// of a partition from reading records it would skip.
    static let offsetCommitInterval: Duration = .seconds(1)

    /// Everything to do after a change, at `now` (`stamp`: the same instant as wall-clock
    /// milliseconds, for the heartbeat's start times): the shards to start or skip, then the next
    /// commit — a transaction of finished shards, a settle, or released offsets — unless one is
    /// in flight (the worker commits one thing at a time).
    mutating func actions(at now: ContinuousClock.Instant, stamp: Int64, skipReason: (ShardRecord) -> String?,
                          newRun: () -> String) -> [WorkerAction] {
        var actions: [WorkerAction] = []
        scheduling: while true {
            switch next(skipReason: skipReason, newRun: newRun, now: stamp) {
            case .start(let shard, let run): actions.append(.start(shard, run: run))
            case .skip(let shard, let reason): actions.append(.skip(shard, reason: reason))
            case .wait, .stop: break scheduling
            }
        }
        if let commit = nextCommit(at: now) { actions.append(commit) }
        return actions
    }

    /// When to look again if nothing happens before: a lingering batch falls due, or released
    /// offsets wait for their next commit. Nil when only an event can change anything.
    func nextDeadline() -> ContinuousClock.Instant? {
        guard committing == nil, publishing.isEmpty else { return nil }
        return [publishDue, releasedSinceCommit && !isStopping ? offsetsDue(otherwise: .now) : nil].compactMap { $0 }.min()
    }

    /// When released offsets may be committed next: a second after the last commit, or `otherwise`.
    private func offsetsDue(otherwise now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        offsetsCommittedAt.map { $0 + Self.offsetCommitInterval } ?? now
    }

    /// Nothing runs, waits to be published or is being committed: a stopping worker may end.
    var isIdle: Bool {
        running.isEmpty && finished.isEmpty && publishing.isEmpty && committing == nil
    }

    /// The executions that should stop: abandoned ones, or all of them when the worker stops.
    var abandonedRuns: Set<String> {
        guard isStopping || running.values.contains(where: \.abandoned) else { return [] }
        return Set(running.values.filter { $0.abandoned || isStopping }.map(\.run))
    }

    /// A commit failed for good (the worker exits): nothing is in flight any more, and nothing
    /// more is committed.
    mutating func commitFailed() {
        stop(.finished("failed"))
        publishing = []
        committing = nil
    }

    private mutating func nextCommit(at now: ContinuousClock.Instant) -> WorkerAction? {
        guard committing == nil, publishing.isEmpty else { return nil }
        if let batch = nextPublish(at: now) { return .publish(batch) }
        if wantsSettle {
            committing = .settle
            return .settle(asked: settleAsked)
        }
        // Not while stopping: they only spare the partition's next owner some skips, and the
        // broker may already be gone (a commit would ride out its absence for minutes).
        guard releasedSinceCommit, !isStopping, now >= offsetsDue(otherwise: now) else { return nil }
        offsetsCommittedAt = now
        releasedSinceCommit = false
        let pending = pendingOffsets()
        // Nothing committable yet (an earlier record still runs): the transaction that publishes
        // it commits the released ones after it too.
        guard !pending.isEmpty else { return nil }
        committing = .offsets
        return .commitOffsets(pending)
    }
}
