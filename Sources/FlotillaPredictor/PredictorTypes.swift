import FlotillaCore

/// One sample handed to a predictor: the sample's id (for logs and for the child) and its input.
public struct PredictorSample: Sendable, Hashable {
    /// The sample id (sent to the child for its own logs).
    public var id: String
    /// The model's input, as JSON bytes.
    public var input: JSONBytes

    public init(id: String, input: JSONBytes) {
        self.id = id
        self.input = input
    }

    /// A sample whose input is `value`, written as compact JSON.
    public init(id: String, value: JSONValue) {
        self.init(id: id, input: JSONBytes(value))
    }
}

/// Why one sample has no output. Becomes the sample's error result; never stops the shard.
public struct PredictionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong, opaque so that kinds can be added.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The model rejected this sample (a per-sample `{"error":...}`).
        public static let model = Kind("model")
        /// The model failed the whole batch (a `{"type":"error"}` frame) twice.
        public static let batch = Kind("batch")
        /// The predictor process crashed, hung, exited or broke the protocol on this sample's batch
        /// `maxAttempts` times (and, with poison isolation, on this sample alone).
        public static let fault = Kind("fault")
        /// No predictor process could be started, or the pool was shut down.
        public static let unavailable = Kind("unavailable")
    }

    /// What went wrong.
    public var kind: Kind
    /// A message for users, e.g. "predictor 'classify' crashed (signal 9) on this batch 3 times".
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// A snapshot of a pool for heartbeats and status.
public struct PredictorPoolState: Sendable, Hashable, Codable {
    /// The stage (pool) name.
    public var stage: String
    /// Live processes (for an in-process builtin: the configured concurrency, `desired`).
    public var processes: Int
    /// Processes running a batch right now (builtins: batches in flight).
    public var busy: Int
    /// Processes being started or restarted.
    public var starting: Int
    /// The size the pool is steering to (`resize(to:)`, autoscaling).
    public var desired: Int
    /// Processes replaced after a fault, since the pool started.
    public var restarts: Int
    /// Batches waiting for a free process.
    public var queued: Int
    /// Batches answered (successfully or with error results) since the pool started.
    public var batches: Int
    /// Samples that ended as error results since the pool started.
    public var failedSamples: Int
    /// The devices its processes hold now, sorted.
    public var devices: [String] = []

    public init(stage: String, processes: Int, busy: Int, starting: Int, desired: Int, restarts: Int, queued: Int, batches: Int, failedSamples: Int,
                devices: [String] = []) {
        self.stage = stage
        self.processes = processes
        self.busy = busy
        self.starting = starting
        self.desired = desired
        self.restarts = restarts
        self.queued = queued
        self.batches = batches
        self.devices = devices
        self.failedSamples = failedSamples
    }
}

/// How a predictor process ended or misbehaved. Every fault kills the process.
enum ProcessFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// It exited or was killed by a signal without being asked to.
    case exited(ExitStatus)
    /// No reply within the timeout (the process was killed with SIGKILL).
    case hung(Duration)
    /// It wrote something that is not a valid frame, or a frame that does not answer the request.
    case protocolViolation(String)
    /// Writing the request failed (its stdin is closed).
    case writeFailed(String)
    /// The process was stopped by the pool (shutdown or resize), not by a fault of its own.
    case stopped
    /// The batch waited behind another one (pipelining) when the process faulted on that one.
    case interrupted

    var description: String {
        switch self {
        case .exited(let status): status.faultDescription
        case .hung(let timeout): "hung (no reply within \(timeout.seconds)s, killed)"
        case .protocolViolation(let why): "broke the protocol (\(why))"
        case .writeFailed(let why): "stopped reading its input (\(why))"
        case .stopped: "was stopped"
        case .interrupted: "ended for a fault on the batch before this one"
        }
    }
}

/// How a child process ended.
enum ExitStatus: Sendable, Equatable, CustomStringConvertible {
    case exited(Int32)
    case signaled(Int32)

    var description: String {
        switch self {
        case .exited(let code): "exit status \(code)"
        case .signaled(let signal): "signal \(signal)"
        }
    }

    /// "crashed (signal 9)" or "exited (status 3)".
    var faultDescription: String {
        switch self {
        case .exited(let code): "exited (status \(code))"
        case .signaled(let signal): "crashed (signal \(signal))"
        }
    }
}

