import FlotillaCore

/// What the controller does to its fleet, as decided by `FleetPlanner`.
enum FleetAction: Sendable, Hashable {
    /// Start a worker process in this slot (its first start, or a restart after the backoff).
    case start(String)
    /// The slot's process exited: the backend forgets it.
    case forget(String)
    /// The worker is gone unexpectedly: the ledger recovers what it held.
    case workerGone(String)
    /// The slot leaves the fleet: the ledger stops counting on it (no new work is sent to it).
    case retire(String)
    /// Ask the running worker to drain: it finishes what it holds, publishes and exits.
    case drain(String)
    /// A draining worker past its drain limit: stop it (SIGTERM, then a hard kill).
    case stop(String)
}

/// The controller's fleet rules as a value: the wanted size (fixed by the operator, or chosen by
/// the `Autoscaler`), the worker slots, restarts with backoff, scale-in by draining and the drain
/// limit. Facts in (exits, starts, heartbeats, scale commands), `FleetAction`s out.
///
/// Worker ids are stable slots ("w1", "w2", ...): a replacement reuses the id of the worker it
/// replaces, so brokers that fence zombie transactions by transactional id (Apache Kafka) fence
/// the old process.
struct FleetPlanner: Sendable {
    let min: Int
    let max: Int
    /// Workers wanted now.
    private(set) var desired: Int
    /// A size the operator asked for (`--workers`, `flotilla scale N`); nil lets the autoscaler choose.
    private(set) var fixed: Int?
    private(set) var autoscaler: Autoscaler
    private(set) var slots: [String: Slot] = [:]
    /// Workers restarted or replaced.
    private(set) var restarts = 0
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
        /// Heard from since its latest start (its start-up time is then measured).
        var heard = false
        /// Started at least once (a later start is a restart).
        var everStarted = false
        /// Told to stop after its drain limit (once).
        var stopSent = false
    }

    /// A process that exits within this long of its start counts as a quick exit.
    static let quickExitMs: Int64 = 10_000

    /// `requested` (the command line's `--workers`) sets the size, widening the spec's range to
    /// include it: the operator's explicit number wins over the spec.
    init(config: FleetConfig, requested: Int?) {
        let requested = requested.map { Swift.max(1, $0) }
        min = Swift.min(Swift.max(0, config.min), requested ?? .max)
        max = Swift.max(min, config.max, requested ?? 0)
        desired = Swift.min(max, Swift.max(min, requested ?? config.min))
        fixed = requested
        autoscaler = Autoscaler(min: min, max: max,
                                scaleDownAfterMs: (config.idleTimeout ?? FleetConfig.defaultIdleTimeout).milliseconds)
    }

    /// The operator's size (clamped to `min … max`), or nil to hand the size back to the autoscaler.
    mutating func scale(to workers: Int?) {
        fixed = workers.map { $0.clamped(min, max) }
        if let fixed { desired = fixed }
    }

    /// Whether the autoscaler chooses the size: a range to choose in and no fixed size.
    var autoscaling: Bool { fixed == nil && min < max }

    /// A heartbeat from `worker` that shows it working (a shard running or committed): the
    /// first since its start measures the start-up time — the time to useful work, group join
    /// and model loading included.
    mutating func heardWorking(from worker: String, now: Int64) {
        guard let slot = slots[worker], slot.running, !slot.heard else { return }
        slots[worker]!.heard = true
        autoscaler.measuredStartup(now - slot.startedAt)
    }

    /// Lets the autoscaler set `desired` from the backlog and the fleet's measured speed.
    mutating func autoscale(samplesLeft: Int, shardsLeft: Int, fleetRate: Double?, busyWorkers: Int, now: Int64) {
        autoscaler.measured(fleetRate: fleetRate, busyWorkers: busyWorkers)
        guard autoscaling else { return }
        desired = autoscaler.decide(current: desired, samplesLeft: samplesLeft, shardsLeft: shardsLeft, now: now)
    }

    /// The fleet's upkeep at `now`, given the backend's pods: notices exits (restart after a
    /// backoff, unless the slot was draining), adds slots up to `desired`, drains the extras, stops
    /// drains older than `drainLimitMs`, and starts the slots that are due.
    mutating func plan(pods: [WorkerPod], drainLimitMs: Int64, now: Int64) -> [FleetAction] {
        var actions: [FleetAction] = []
        for pod in pods where pod.exited {
            guard let slot = slots[pod.id], slot.running else { continue }
            actions.append(.forget(pod.id))
            if slot.draining {
                slots[pod.id] = nil
                continue
            }
            if !pod.stopRequested { exited(pod.id, status: pod.exitStatus, reason: pod.exitReason, now: now) }
            actions.append(.workerGone(pod.id))
            update(pod.id) { slot in
                slot.running = false
                slot.quickExits = now - slot.startedAt < Self.quickExitMs ? slot.quickExits + 1 : 0
                slot.restartAt = now + Self.backoffMs(quickExits: slot.quickExits)
            }
        }
        let active = self.active
        if active.count < desired {
            for _ in active.count..<desired {
                let id = addSlot()
                update(id) { $0.restartAt = now }
            }
        } else if active.count > desired {
            // The newest slots go first: "w1" stays.
            for slot in active.suffix(active.count - desired) {
                actions.append(.retire(slot.id))
                if slot.running {
                    update(slot.id) { $0.draining = true; $0.drainingSince = now }
                    actions.append(.drain(slot.id))
                } else {
                    slots[slot.id] = nil
                }
            }
        }
        // A draining worker gets its shard timeout to finish, then it is stopped.
        for slot in slots.values.sorted(by: { Self.order($0.id, $1.id) })
        where slot.draining && slot.running && !slot.stopSent && now - (slot.drainingSince ?? now) > drainLimitMs {
            update(slot.id) { $0.stopSent = true }
            actions.append(.stop(slot.id))
        }
        for slot in slots.values.sorted(by: { Self.order($0.id, $1.id) })
        where !slot.running && !slot.draining && (slot.restartAt ?? .max) <= now {
            actions.append(.start(slot.id))
        }
        return actions
    }

    /// The backend started slot `id`.
    mutating func started(_ id: String, now: Int64) {
        if slots[id]?.everStarted == true { restarts += 1 }
        update(id) { slot in
            slot.everStarted = true
            slot.running = true
            slot.startedAt = now
            slot.restartAt = nil
            slot.heard = false
        }
    }

    /// The backend could not start slot `id`: try again after a backoff. A permanent refusal (an
    /// RBAC denial, an invalid pod template) counts towards failing the job, as a worker's own
    /// report that it cannot start does.
    mutating func startFailed(_ id: String, _ failure: WorkerFailure? = nil, now: Int64) {
        if let failure { failed(id, failure, now: now) }
        update(id) { slot in
            slot.quickExits += 1
            slot.restartAt = now + Swift.max(500, Self.backoffMs(quickExits: slot.quickExits))
        }
    }

    /// The backend replaced slot `id` (a lost or hung worker) with a new process.
    mutating func replaced(_ id: String, now: Int64) {
        restarts += 1
        update(id) { $0.startedAt = now; $0.heard = false }
    }

    /// The backend could not replace slot `id`: start it again in a second.
    mutating func replaceFailed(_ id: String, now: Int64) {
        update(id) { $0.running = false; $0.restartAt = now + 1_000 }
    }

    /// The whole fleet is being stopped (job over, controller shutting down).
    mutating func stoppingAll() {
        for id in slots.keys { update(id) { $0.running = false; $0.draining = true } }
    }

    /// Slots that are not draining.
    var active: [Slot] { slots.values.filter { !$0.draining }.sorted { Self.order($0.id, $1.id) } }

    /// A new slot id: the lowest "wN" not in use.
    private mutating func addSlot() -> String {
        var index = 1
        while slots["w\(index)"] != nil { index += 1 }
        let id = "w\(index)"
        slots[id] = Slot(id: id)
        return id
    }

    private mutating func update(_ id: String, _ body: (inout Slot) -> Void) {
        if slots[id] != nil { body(&slots[id]!) }
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
    mutating func exited(_ worker: String, status: Int32?, reason: String? = nil, now: Int64) {
        // Its own report, when it sent one just before, says more than the status.
        if let lastReport, lastReport.worker == worker, now - lastReport.time < 10_000 { return }
        let why = reason.map { " (\($0))" } ?? ""
        lastError = WorkerError(worker: worker, message: "worker \(worker) exited with status \(status.map(String.init) ?? "unknown")\(why)",
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
