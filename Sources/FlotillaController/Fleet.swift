import FlotillaCore

/// The fleet's wanted size and its worker slots: ids and restart backoff.
///
/// Worker ids are stable slots ("w1", "w2", ...): a replacement reuses the id of the worker it
/// replaces, so brokers that fence zombie transactions by transactional id (Apache Kafka) fence
/// the old process.
struct Fleet: Sendable {
    let min: Int
    let max: Int
    /// Workers wanted now.
    private(set) var desired: Int
    private(set) var slots: [String: Slot] = [:]
    /// Workers restarted or replaced.
    var restarts = 0
    /// Permanent start failures reported in a row, with no worker running between them.
    private(set) var startFailures = 0
    /// The latest error a worker reported, or its unexpected exit: what the operator sees while
    /// the fleet retries.
    private(set) var lastError: WorkerError?
    /// The latest failure a worker reported itself (its exit, seen after, says less).
    private(set) var lastReport: WorkerError?

    struct WorkerError: Sendable, Hashable {
        var worker: String
        var message: String
        var time: Int64
    }

    /// Permanent start failures in a row that fail the job: one is a fact about one machine, a
    /// few in a row on fresh processes with nothing running are a fact about the job.
    static let startFailureLimit = 3

    struct Slot: Sendable {
        var id: String
        /// Told to drain (scale down): its exit is expected; not restarted.
        var draining = false
        var drainingSince: Int64?
        /// Exits soon after a start in a row: the backoff grows with them.
        var quickExits = 0
        /// A start is due at this time (after an exit); nil when running or starting now.
        var restartAt: Int64?
        var running = false
        var startedAt: Int64 = 0
    }

    /// A process that exits within this long of its start counts as a quick exit.
    static let quickExitMs: Int64 = 10_000

    /// `requested` (the command line's `--workers`) sets the size, widening the spec's range to
    /// include it: the operator's explicit number wins over the spec.
    init(config: FleetConfig, requested: Int?) {
        let requested = requested.map { Swift.max(1, $0) }
        min = Swift.min(Swift.max(1, config.min), requested ?? .max)
        max = Swift.max(min, config.max, requested ?? 0)
        desired = Swift.min(max, Swift.max(min, requested ?? config.min))
    }

    /// A `scale` command: clamped to workers.min...workers.max.
    mutating func scale(to workers: Int) {
        desired = Swift.min(max, Swift.max(min, workers))
    }

    /// Slots that are not draining.
    var active: [Slot] { slots.values.filter { !$0.draining }.sorted { Self.order($0.id, $1.id) } }

    /// A new slot id: the lowest "wN" not in use.
    mutating func addSlot() -> String {
        var index = 1
        while slots["w\(index)"] != nil { index += 1 }
        let id = "w\(index)"
        slots[id] = Slot(id: id)
        return id
    }

    mutating func update(_ id: String, _ body: (inout Slot) -> Void) {
        if slots[id] != nil { body(&slots[id]!) }
    }

    mutating func remove(_ id: String) {
        slots[id] = nil
    }

    /// The delay before restarting after `quickExits` quick exits in a row: none after a worker
    /// that ran a while, then 0.5 s, 1 s, 2 s ... up to 30 s.
    static func backoffMs(quickExits: Int) -> Int64 {
        guard quickExits > 0 else { return 0 }
        return Swift.min(30_000, 500 << Int64(Swift.min(quickExits - 1, 10)))
    }

    /// A worker's report that it cannot start.
    mutating func failed(_ worker: String, _ failure: WorkerFailure, now: Int64) {
        lastError = WorkerError(worker: worker, message: failure.message, time: now)
        lastReport = lastError
        if failure.permanent { startFailures += 1 }
    }

    /// A worker exited unexpectedly; `status` is its exit code or 128 + signal.
    mutating func exited(_ worker: String, status: Int32?, now: Int64) {
        // Its own report, when it sent one just before, says more than the status.
        if let lastReport, lastReport.worker == worker, now - lastReport.time < 10_000 { return }
        lastError = WorkerError(worker: worker, message: "worker \(worker) exited with status \(status.map(String.init) ?? "unknown")",
                                time: now)
    }

    /// A worker runs well: earlier start failures were not the job's fault.
    mutating func running() {
        startFailures = 0
    }

    /// Why the job cannot run, once `startFailureLimit` permanent start failures came in a row.
    var cannotStart: JobFailure? {
        guard startFailures >= Self.startFailureLimit, let lastReport else { return nil }
        return JobFailure(kind: .predictorStart, message: "\(startFailures) workers in a row could not start; the last one (\(lastReport.worker)) said: \(lastReport.message)")
    }

    /// "w2" before "w10".
    static func order(_ a: String, _ b: String) -> Bool {
        let na = Int(a.dropFirst()) ?? .max, nb = Int(b.dropFirst()) ?? .max
        return (na, a) < (nb, b)
    }
}
