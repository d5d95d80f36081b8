import FlotillaCore

/// Everything a pool needs to run one model stage. Defaults are documented in docs/PREDICTORS.md.
public struct PredictorPoolConfig: Sendable, Hashable {
    /// What runs the model.
    public enum Command: Sendable, Hashable {
        /// A child process speaking the framed protocol: `argv[0]` is looked up in `PATH`.
        case process(argv: [String])
        /// An in-process Swift predictor by name (`identity`, `hash-embed`), see `BuiltinPredictors`.
        case builtin(String)
    }

    /// In-node autoscaling: grow by one process when batches have waited this long for a free
    /// process, shrink one idle process after it has been idle this long. Never leaves min...max.
    public struct Autoscale: Sendable, Hashable {
        /// How long the oldest batch must have waited for a free process before the pool grows.
        public var growAfter: Duration
        /// How long a process must have been idle before the pool stops it.
        public var shrinkAfterIdle: Duration
        /// How often the pool looks.
        public var interval: Duration
        /// How long a process must have been idle before the pool gives it up to another stage
        /// whose batches wait while the worker's `ProcessBudget` is spent.
        public var yieldAfterIdle: Duration

        public init(growAfter: Duration = .milliseconds(500), shrinkAfterIdle: Duration = .seconds(30), interval: Duration = .milliseconds(250),
                    yieldAfterIdle: Duration = .seconds(1)) {
            self.growAfter = growAfter
            self.shrinkAfterIdle = shrinkAfterIdle
            self.interval = interval
            self.yieldAfterIdle = yieldAfterIdle
        }
    }

    /// The stage name: in logs, metrics and error messages ("predictor 'classify' crashed ...").
    public var name: String
    /// What runs the model: a child process or a builtin.
    public var command: Command
    /// Samples per request frame (further capped by the child's hello `maxBatch`).
    public var batchSize: Int
    /// The fewest processes `resize(to:)` and autoscaling leave running (0 allows scaling to zero).
    public var minProcesses: Int
    /// The most processes `resize(to:)` and autoscaling start.
    public var maxProcesses: Int
    /// Processes started by `start()`; defaults to `minProcesses`, at least 1.
    public var initialProcesses: Int?
    /// A batch without a reply after this long kills the process (SIGKILL) and is retried.
    public var batchTimeout: Duration
    /// The hello frame must arrive within this long after spawning.
    public var startupTimeout: Duration
    /// Tries of one batch on processes that fault before its samples become error results.
    public var maxAttempts: Int
    /// After `maxAttempts` faults, split the batch in halves and retry them to find the poison
    /// sample(s), so that their neighbours still get outputs.
    public var isolatePoison: Bool
    /// Added to (and overriding) this process's environment for the child.
    public var environment: [String: String]
    /// The child's working directory; nil means this process's.
    public var workingDirectory: String?
    /// Time between the shutdown frame, SIGTERM and SIGKILL when stopping a process.
    public var shutdownGrace: Duration
    /// First restart delay after a fault; doubles per consecutive fault up to `maxBackoff`, reset by a success.
    public var initialBackoff: Duration
    /// The longest restart delay.
    public var maxBackoff: Duration
    /// nil turns autoscaling off; with `minProcesses == maxProcesses` it has nothing to do.
    public var autoscale: Autoscale?
    /// Devices each process gets from the pool's `DeviceAllocator` (its `CUDA_VISIBLE_DEVICES`).
    public var devicesPerProcess = 0

    /// A stage's settings; every default is the one in the table in docs/PREDICTORS.md.
    public init(
        name: String,
        command: Command,
        batchSize: Int = 32,
        minProcesses: Int = 1,
        maxProcesses: Int = 1,
        initialProcesses: Int? = nil,
        batchTimeout: Duration = .seconds(60),
        startupTimeout: Duration = .seconds(60),
        maxAttempts: Int = 3,
        isolatePoison: Bool = true,
        environment: [String: String] = [:],
        workingDirectory: String? = nil,
        shutdownGrace: Duration = .seconds(5),
        initialBackoff: Duration = .milliseconds(100),
        maxBackoff: Duration = .seconds(5),
        autoscale: Autoscale? = Autoscale()
    ) {
        self.name = name
        self.command = command
        self.batchSize = batchSize
        self.minProcesses = minProcesses
        self.maxProcesses = maxProcesses
        self.initialProcesses = initialProcesses
        self.batchTimeout = batchTimeout
        self.startupTimeout = startupTimeout
        self.maxAttempts = maxAttempts
        self.isolatePoison = isolatePoison
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.shutdownGrace = shutdownGrace
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.autoscale = autoscale
    }

    /// Checks every field; the message names the stage and the field.
    public func validate() throws(FlotillaError) {
        func fail(_ message: String) -> FlotillaError {
            FlotillaError(.invalidConfiguration, "predictor '\(name)': \(message)")
        }
        if name.isEmpty { throw FlotillaError(.invalidConfiguration, "a predictor stage needs a non-empty name") }
        switch command {
        case .process(let argv):
            if argv.isEmpty || argv[0].isEmpty { throw fail("command must name an executable") }
        case .builtin(let builtin):
            if BuiltinPredictors.named(builtin) == nil {
                throw fail("unknown builtin '\(builtin)' (known: \(BuiltinPredictors.names.joined(separator: ", ")))")
            }
        }
        if batchSize < 1 { throw fail("batch size must be >= 1, got \(batchSize)") }
        if minProcesses < 0 { throw fail("minProcesses must be >= 0, got \(minProcesses)") }
        if maxProcesses < 1 { throw fail("maxProcesses must be >= 1, got \(maxProcesses)") }
        if minProcesses > maxProcesses { throw fail("minProcesses (\(minProcesses)) must be <= maxProcesses (\(maxProcesses))") }
        if let initialProcesses, !(minProcesses...maxProcesses).contains(initialProcesses) {
            throw fail("initialProcesses (\(initialProcesses)) must be within \(minProcesses)...\(maxProcesses)")
        }
        if maxAttempts < 1 { throw fail("maxAttempts must be >= 1, got \(maxAttempts)") }
        if batchTimeout <= .zero { throw fail("batch timeout must be > 0") }
        if startupTimeout <= .zero { throw fail("startup timeout must be > 0") }
        if devicesPerProcess < 0 { throw fail("devices per process must be >= 0, got \(devicesPerProcess)") }
        if case .builtin = command, devicesPerProcess > 0 { throw fail("a builtin runs inside the worker and gets no device") }
    }

    /// The number of processes `start()` launches.
    var startSize: Int { initialProcesses ?? max(minProcesses, 1) }
}
