import FlotillaCore
import Synchronization

/// The worker's view of the job ledger, fed from the acks and control topics: which shards are
/// done, which attempts are superseded, and the control commands addressed to this worker.
final class WorkerLedger: Sendable {
    private struct State {
        var done: Set<String> = []
        var latestAttempt: [String: Int] = [:]
        /// Shard → attempt another worker was told to take (warm start, express lane).
        var takenElsewhere: [String: Int] = [:]
        var commands: [ControlRecord] = []
    }

    private let state = Mutex(State())
    let workerID: String
    /// Commands aimed at this worker id before this process started were meant for a predecessor
    /// in the same slot; job-wide ones ("*": stop, cancel) apply whenever they were sent.
    let startedAt: Int64

    init(workerID: String, startedAt: Int64 = Timestamp.now()) {
        self.workerID = workerID
        self.startedAt = startedAt
    }

    /// Whether this record should be skipped: its shard is done or a later attempt exists.
    func shouldSkip(_ record: ShardRecord) -> String? {
        state.withLock { state in
            if state.done.contains(record.shard) { return "already done" }
            if let latest = state.latestAttempt[record.shard], latest > record.attempt { return "superseded by attempt \(latest)" }
            // The controller recovers it if that worker fails (a new attempt), so this copy is not needed.
            if state.takenElsewhere[record.shard] == record.attempt { return "taken by another worker" }
            return nil
        }
    }

    func apply(ack: AckRecord) {
        guard ack.status == .done else { return }
        _ = state.withLock { $0.done.insert(ack.shard) }
    }

    func apply(control: ControlRecord) {
        state.withLock { state in
            if control.command == .supersede, let shard = control.shard, let attempt = control.attempt {
                state.latestAttempt[shard] = max(state.latestAttempt[shard] ?? 0, attempt)
            }
            let current = control.target == ControlRecord.allWorkers || control.time >= startedAt
            if control.command == .take, let shard = control.shard, let attempt = control.attempt,
               !(control.applies(to: workerID) && current) {
                state.takenElsewhere[shard] = attempt
            }
            if control.applies(to: workerID), current, control.command != .supersede { state.commands.append(control) }
        }
    }

    /// Control commands for this worker received since the last call.
    func takeCommands() -> [ControlRecord] {
        state.withLock { state in
            defer { state.commands.removeAll() }
            return state.commands
        }
    }
}
