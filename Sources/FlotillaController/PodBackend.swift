import FlotillaCore

/// A worker process or pod as a backend sees it.
public struct WorkerPod: Sendable, Hashable {
    /// The worker id (`flotilla worker --worker-id`).
    public var id: String
    /// Its process id, when it is a local process.
    public var pid: Int32?
    /// When it was started (epoch ms).
    public var startedAt: Int64
    /// Whether it has exited (or was deleted).
    public var exited: Bool
    /// How it ended: the exit code, or 128 + the signal number; nil while running.
    public var exitStatus: Int32?
    /// Whether the controller asked it to stop (an exit is then expected, not a failure).
    public var stopRequested: Bool
    /// Why it ended, when the backend knows more than the status (a pod's "OOMKilled",
    /// "ImagePullBackOff: ...").
    public var exitReason: String?

    public init(id: String, pid: Int32? = nil, startedAt: Int64, exited: Bool = false, exitStatus: Int32? = nil,
                stopRequested: Bool = false, exitReason: String? = nil) {
        self.id = id
        self.pid = pid
        self.startedAt = startedAt
        self.exited = exited
        self.exitStatus = exitStatus
        self.stopRequested = stopRequested
        self.exitReason = exitReason
    }
}

/// Starts, stops and replaces the fleet's workers: local processes, Kubernetes pods, or nothing
/// (workers run elsewhere).
public protocol PodBackend: Sendable {
    /// Starts worker `id`.
    func start(worker id: String) async throws(FlotillaError) -> WorkerPod
    /// Stops worker `id`: SIGTERM (or pod deletion), then a hard kill after `grace`.
    func stop(worker id: String, grace: Duration) async
    /// Every worker this backend started and has not forgotten, running or exited.
    func list() async -> [WorkerPod]
    /// Kills worker `id` at once and starts a fresh one with the same id in its place.
    func replace(worker id: String) async throws(FlotillaError) -> WorkerPod
    /// Forgets an exited worker (it no longer appears in `list`).
    func forget(worker id: String) async
    /// Whether this backend starts and stops workers (false: they run elsewhere).
    var managesWorkers: Bool { get }
    /// Releases what the backend holds (connections); called once, after the fleet is stopped.
    func close() async
}

extension PodBackend {
    public var managesWorkers: Bool { true }
    public func close() async {}

    /// Stops every running worker at once, each with the same grace period.
    public func stopAll(grace: Duration) async {
        let running = await list().filter { !$0.exited }.map(\.id)
        await withTaskGroup(of: Void.self) { group in
            for id in running { group.addTask { await self.stop(worker: id, grace: grace) } }
        }
    }
}

/// The backend for workers started by someone else (another machine, a scheduler): the controller
/// still re-enqueues their work, but starts and stops nothing.
public struct ExternalPodBackend: PodBackend {
    public init() {}
    public func start(worker id: String) async throws(FlotillaError) -> WorkerPod {
        throw FlotillaError(.invalidConfiguration, "the external backend cannot start workers; start `flotilla worker` yourself")
    }
    public func stop(worker id: String, grace: Duration) async {}
    public func list() async -> [WorkerPod] { [] }
    public func replace(worker id: String) async throws(FlotillaError) -> WorkerPod {
        throw FlotillaError(.invalidConfiguration, "the external backend cannot replace workers")
    }
    public func forget(worker id: String) async {}
    public var managesWorkers: Bool { false }
}
