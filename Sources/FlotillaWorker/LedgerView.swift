import FlotillaCore

/// The worker's view of the job, fed from the acks and control topics: which shards are done,
/// which attempts are superseded or taken by another worker, and the control commands addressed
/// to this worker. A value owned by the worker's event loop.
struct LedgerView: Sendable {
    private var done: Set<String> = []
    private var latestAttempt: [String: Int] = [:]
    /// Shard → attempt another worker was told to take (warm start, express lane).
    private var takenElsewhere: [String: Int] = [:]
    private var commands: [ControlRecord] = []
    let workerID: String
    /// Commands aimed at this worker id before this process started were meant for a predecessor
    /// in the same slot; job-wide ones ("*": stop, cancel) apply whenever they were sent.
    let startedAt: Int64

    init(workerID: String, startedAt: Int64 = Timestamp.now()) {
        self.workerID = workerID
        self.startedAt = startedAt
    }

    /// Why this record should be skipped (its shard is done, a later attempt exists, or another
    /// worker took it), or nil.
    func skipReason(_ record: ShardRecord) -> String? {
        if done.contains(record.shard) { return "already done" }
        if let latest = latestAttempt[record.shard], latest > record.attempt { return "superseded by attempt \(latest)" }
        // The controller recovers it if that worker fails (a new attempt), so this copy is not needed.
        if takenElsewhere[record.shard] == record.attempt { return "taken by another worker" }
        return nil
    }

    mutating func apply(ack: AckRecord) {
        guard ack.status == .done else { return }
        done.insert(ack.shard)
    }

    mutating func apply(control: ControlRecord) {
        if control.command == .supersede, let shard = control.shard, let attempt = control.attempt {
            latestAttempt[shard] = max(latestAttempt[shard] ?? 0, attempt)
        }
        let current = control.target == ControlRecord.allWorkers || control.time >= startedAt
        if control.command == .take, let shard = control.shard, let attempt = control.attempt,
           !(control.applies(to: workerID) && current) {
            takenElsewhere[shard] = attempt
        }
        if control.applies(to: workerID), current, control.command != .supersede { commands.append(control) }
    }

    /// Control commands for this worker received since the last call.
    mutating func takeCommands() -> [ControlRecord] {
        defer { commands.removeAll() }
        return commands
    }
}
