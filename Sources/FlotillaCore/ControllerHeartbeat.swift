/// The controller's own periodic record on `<p>.<job>.heartbeats`, keyed `ControllerHeartbeat.key`.
///
/// Reading its own heartbeat back tells a controller how fresh its view of the topics is: every
/// record on the (single-partition) heartbeats topic sent before it has been read. Workers are
/// judged lost only against that view, so a broker outage or a lagging broker never looks like
/// dead workers. Another controller's recent heartbeat means the job already has a controller.
public struct ControllerHeartbeat: FlotillaRecord, Hashable {
    public static let recordType = "controller"
    public static let recordName = "controller heartbeat"
    /// The key of controller heartbeats: not a valid worker id (workers cannot use it).
    public static let key = "flotilla-controller"

    public var job: String
    /// This controller process's id (a UUID), unique per start.
    public var controller: String
    public var host: String
    public var pid: Int
    /// When this controller started (epoch ms): of two controllers, the later one yields.
    public var startedAt: Int64
    /// When this heartbeat was sent (epoch ms, the sender's clock).
    public var time: Int64
    /// Set by a controller started with `--take-over`: an older controller that reads it stops.
    public var takeOver: Bool?
    /// Set in the last heartbeat of a controller that stops: the job is free for another one.
    public var stopping: Bool?
    /// The live figures of the controller's `/status` while the job runs, so that `flotilla
    /// status --watch` shows the same rate and ETA (optional).
    public var progress: ControllerProgress?

    public init(job: String, controller: String, host: String, pid: Int, startedAt: Int64, time: Int64 = Timestamp.now(),
                takeOver: Bool? = nil) {
        self.job = job
        self.controller = controller
        self.host = host
        self.pid = pid
        self.startedAt = startedAt
        self.time = time
        self.takeOver = takeOver
    }

    /// "host pid 123 (started 2026-12-01T15:00:00Z)".
    public var holder: String { "\(host) pid \(pid)" }
}

/// The figures of a running job as its controller's `/status` has them.
public struct ControllerProgress: Sendable, Hashable, Codable {
    public var samplesDone: Int
    /// Samples finished per second now: the live workers' own measures, summed.
    public var samplesPerSecond: Double
    /// Seconds left at that rate; nil while unknown.
    public var etaSeconds: Double?

    public init(samplesDone: Int, samplesPerSecond: Double, etaSeconds: Double?) {
        self.samplesDone = samplesDone
        self.samplesPerSecond = samplesPerSecond.isFinite ? samplesPerSecond : 0
        self.etaSeconds = etaSeconds.flatMap { $0.isFinite ? $0 : nil }
    }
}
