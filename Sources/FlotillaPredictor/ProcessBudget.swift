import Synchronization

/// The worker's cores as a budget of predictor processes shared by every stage's pool: a pool
/// grows past its minimum only while the fleet of processes fits the budget, and gives an idle
/// process up sooner when another stage's batches are waiting for one. Minimum pools always run.
public final class ProcessBudget: Sendable {
    /// Processes the worker's stages may run together (`--cores`, default the machine's cores).
    public let total: Int
    private let state = Mutex<(processes: [String: Int], waiting: Set<String>)>(([:], []))

    public init(total: Int) { self.total = max(1, total) }

    /// What `stage` runs now (started and starting) and whether batches wait for a process.
    public func report(_ stage: String, processes: Int, waiting: Bool) {
        state.withLock { state in
            state.processes[stage] = processes
            if waiting { state.waiting.insert(stage) } else { state.waiting.remove(stage) }
        }
    }

    /// Counts one more process for `stage` if the budget has room; false leaves it as it is.
    public func tryGrow(_ stage: String) -> Bool {
        state.withLock { state in
            guard state.processes.values.reduce(0, +) < total else { return false }
            state.processes[stage, default: 0] += 1
            return true
        }
    }

    /// Whether a stage other than `stage` has batches waiting for a process.
    public func othersWaiting(_ stage: String) -> Bool {
        state.withLock { !$0.waiting.subtracting([stage]).isEmpty }
    }

    /// Processes counted now, all stages together.
    public var used: Int { state.withLock { $0.processes.values.reduce(0, +) } }
}
