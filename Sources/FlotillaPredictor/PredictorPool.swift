import FlotillaCore
import Logging
import Metrics
import ServiceLifecycle

/// One model stage's pool: predictor processes (or an in-process builtin) behind one `predict` call.
///
/// - Concurrent `predict` calls spread over the processes; a call larger than the batch size is
///   split into batches that run concurrently. Results come back per sample, in order.
/// - Faults never throw: a process that exits, crashes, hangs past `batchTimeout` or breaks the
///   protocol is killed and replaced with backoff, its batch retried on a healthy process; after
///   `maxAttempts` faults the batch is bisected to isolate poison samples (`isolatePoison`), and
///   what still fails becomes error results naming the cause.
/// - Lifecycle: `start()` (fails with a clear error if the command cannot start), then `predict`,
///   `resize(to:)`, `state()`; `shutdown()` stops every process and leaves no child behind.
///   `run()` does start, wait for cancellation, shutdown, for use as a service.
public actor PredictorPool: Service {
    public nonisolated let config: PredictorPoolConfig
    let logger: Logger
    let metrics: PredictorMetrics
    let builtin: (any BuiltinPredictor)?

    struct Slot {
        let process: PredictorProcess
        /// Batches sent to it and not answered (at most `PredictorProcess.pipelineDepth`).
        var running = 0
        /// Since when a batch waits behind the one it computes, for the autoscaler.
        var queuedSince: ContinuousClock.Instant?
        var lastUsed: ContinuousClock.Instant
        /// Surplus after a resize: it takes no new batch and stops once it holds none.
        var draining = false
        var busy: Bool { running > 0 }
    }
    /// A batch waiting for room on a process; whoever makes room sends it (`offer`).
    struct Waiter {
        let since: ContinuousClock.Instant
        let samples: [PredictorSample]
        let continuation: CheckedContinuation<Dispatched, Never>
    }
    /// Where a batch ran and what came back, or why it could not run.
    enum Dispatched: Sendable {
        case ran(id: Int, Result<PredictorProcess.Reply, ProcessFault>, elapsed: Duration)
        case unavailable(PredictionError)
    }
    enum Phase { case created, running, stopping, stopped }

    /// The outcome of one try of one batch.
    enum Attempt {
        case outputs([Result<JSONBytes, PredictionError>])
        case batchError(String)
        case fault(ProcessFault)
        case unavailable(PredictionError)
        /// Lost with a process that faulted on the batch before it: tried again, not counted.
        case retry
    }

    var phase = Phase.created
    var slots: [Int: Slot] = [:]
    /// Idle process ids; the most recently used is taken first, so surplus processes age out.
    var idle: [Int] = []
    var waiters: [Waiter] = []
    var desired: Int
    var starting = 0
    var nextID = 0
    var backoff: Duration
    var restartCount = 0
    var batchCount = 0
    var failedSampleCount = 0
    var builtinInFlight = 0
    /// The smallest `maxBatch` any child announced.
    var childMaxBatch: Int?
    var tasks: [Int: Task<Void, Never>] = [:]
    /// Why `start()` failed, for the results of later calls.
    var startFailure: String?
    var nextTaskKey = 0
    /// Where processes get their devices (`config.devicesPerProcess`), shared by the worker's pools.
    let devices: DeviceAllocator?
    /// The devices each process holds, by process id.
    var deviceSlices: [Int: [String]] = [:]
    /// The worker's processes budget, shared with the other stages' pools; nil: no limit but max.
    let budget: ProcessBudget?

    /// Where a caller of `predict` should run to be resumed by a reply on the thread that read it
    /// (`withTaskExecutorPreference`, `addTask(executorPreference:)`): the pipe loop, for a pool of
    /// processes; nil for a builtin, whose batches compute on the caller's thread.
    public nonisolated var replyExecutor: (any TaskExecutor)? {
        if case .process = config.command { PipeLoop.shared } else { nil }
    }

    /// Validates `config`; starts nothing (call `start()`).
    /// - Parameter metricsFactory: where the pool's metrics go; nil means `MetricsSystem.factory`.
    /// - Parameter devices: the worker's devices, for a stage whose processes need some.
    /// - Parameter budget: the worker's process budget across stages, for growing past `minProcesses`.
    public init(config: PredictorPoolConfig, logger: Logger, metricsFactory: (any MetricsFactory)? = nil,
                devices: DeviceAllocator? = nil, budget: ProcessBudget? = nil) throws(FlotillaError) {
        self.budget = budget
        try config.validate()
        if config.devicesPerProcess > 0, devices == nil {
            throw FlotillaError(.invalidConfiguration, "predictor '\(config.name)' needs \(config.devicesPerProcess) device(s) per process and the worker has none")
        }
        self.devices = devices
        self.config = config
        var logger = logger
        logger[metadataKey: "flotilla.stage"] = "\(config.name)"
        self.logger = logger
        self.metrics = PredictorMetrics(stage: config.name, factory: metricsFactory)
        if case .builtin(let name) = config.command { builtin = BuiltinPredictors.named(name) } else { builtin = nil }
        self.desired = max(1, config.startSize)
        self.backoff = config.initialBackoff
    }

    /// Starts the pool's processes. The first one is started before returning, so a command that
    /// cannot start (missing executable, crash on import, no hello) fails here with its reason.
    public func start() async throws(FlotillaError) {
        guard phase == .created else { return }
        phase = .running
        guard builtin == nil else { return }
        let id = nextID
        nextID += 1
        guard reserveDevices(id) else {
            phase = .stopped
            let failure = FlotillaError(.invalidConfiguration, "predictor '\(config.name)' needs \(config.devicesPerProcess) device(s) per process; \(devices?.freeCount ?? 0) of the worker's \(devices?.devices.count ?? 0) are free")
            startFailure = failure.message
            throw failure
        }
        starting += 1
        let result = await launch(id: id)
        starting -= 1
        switch result {
        case .success(let process):
            add(id, process)
        case .failure(let error):
            freeDevices(id)
            phase = .stopped
            startFailure = error.message
            throw error
        }
        for _ in 1..<max(1, desired) { scheduleLaunch(after: .zero) }
        if let policy = config.autoscale, config.minProcesses < config.maxProcesses {
            spawnTask { [self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: policy.interval)
                    await autoscaleTick(policy)
                }
            }
        }
        logger.info("predictor pool started", metadata: ["flotilla.processes": "\(desired)"])
    }

    /// `Service`: starts the pool, serves until a graceful shutdown is asked or the calling task
    /// is cancelled, then shuts the pool down.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Runs `samples` through the model: one result per sample, in order. Never throws: faults
    /// become error results once retries are exhausted.
    public func predict(_ samples: [PredictorSample]) async -> [Result<JSONBytes, PredictionError>] {
        if samples.isEmpty { return [] }
        let size = min(config.batchSize, childMaxBatch ?? .max)
        if samples.count <= size { return await predictBatch(samples) }
        var chunks: [[PredictorSample]] = []
        var index = 0
        while index < samples.count {
            chunks.append(Array(samples[index..<min(index + size, samples.count)]))
            index += size
        }
        return await withTaskGroup(of: (Int, [Result<JSONBytes, PredictionError>]).self) { group in
            for (i, chunk) in chunks.enumerated() {
                group.addTask { (i, await self.predictBatch(chunk)) }
            }
            var parts = [[Result<JSONBytes, PredictionError>]](repeating: [], count: chunks.count)
            for await (i, part) in group { parts[i] = part }
            return parts.flatMap { $0 }
        }
    }

    /// Sets the number of processes, clamped to minProcesses...maxProcesses. Surplus idle
    /// processes stop now, busy ones when their batch ends.
    public func resize(to count: Int) {
        desired = min(max(count, config.minProcesses), config.maxProcesses)
        guard phase == .running, builtin == nil else { return }
        while slots.count + starting < desired { scheduleLaunch(after: .zero) }
        while slots.count + starting > desired, let id = idle.first { retire(id) }
    }

    /// A snapshot for heartbeats.
    public func state() -> PredictorPoolState {
        PredictorPoolState(
            stage: config.name,
            processes: builtin == nil ? slots.count : desired,
            busy: builtin == nil ? slots.values.filter(\.busy).count : builtinInFlight,
            starting: starting,
            desired: desired,
            restarts: restartCount,
            queued: waiters.count + slots.values.reduce(0) { $0 + max(0, $1.running - 1) },
            batches: batchCount,
            failedSamples: failedSampleCount,
            devices: deviceSlices.values.flatMap { $0 }.sorted()
        )
    }

    /// Stops every process (shutdown frame, SIGTERM, SIGKILL, `shutdownGrace` apart) and waits for
    /// them to exit. Batches still running get their reply if it comes within the grace period;
    /// waiting and later calls get `unavailable` error results.
    public func shutdown() async {
        guard phase == .running || phase == .created else { return }
        phase = .stopping
        for task in tasks.values { task.cancel() }
        let waiting = waiters
        waiters.removeAll()
        for waiter in waiting { waiter.continuation.resume(returning: .unavailable(shutDownError)) }
        let processes = slots.values.map(\.process)
        slots.removeAll()
        idle.removeAll()
        for id in Array(deviceSlices.keys) { freeDevices(id) }
        let grace = config.shutdownGrace
        await withTaskGroup(of: Void.self) { group in
            for process in processes { group.addTask { await process.shutdown(grace: grace) } }
        }
        while let task = tasks.values.first {
            await task.value
        }
        phase = .stopped
        logger.info("predictor pool stopped")
    }

    // MARK: - Batches

    func predictBatch(_ samples: [PredictorSample]) async -> [Result<JSONBytes, PredictionError>] {
        let results: [Result<JSONBytes, PredictionError>]
        if phase != .running {
            results = samples.map { _ in .failure(phase == .created ? notStartedError : shutDownError) }
        } else if let builtin {
            builtinInFlight += 1
            results = await Self.runBuiltin(builtin, samples, metrics: metrics)
            builtinInFlight -= 1
        } else {
            results = await runBatch(samples)
        }
        let failed = results.reduce(0) { count, result in if case .failure = result { count + 1 } else { count } }
        batchCount += 1
        failedSampleCount += failed
        metrics.batches.increment()
        if failed > 0 { metrics.sampleErrors.increment(by: failed) }
        return results
    }

    /// Builtins run off the actor, on the global executor, so batches compute in parallel.
    nonisolated static func runBuiltin(_ builtin: any BuiltinPredictor, _ samples: [PredictorSample], metrics: PredictorMetrics) async -> [Result<JSONBytes, PredictionError>] {
        let clock = ContinuousClock()
        let start = clock.now
        let results = builtin.predict(samples.map(\.input))
        let elapsed = start.duration(to: clock.now)
        metrics.batchSeconds.recordNanoseconds(Int64(elapsed.seconds * 1e9))
        return results
    }

    /// One batch with retries: faults up to `maxAttempts`, one retry after a batch-level error.
    func runBatch(_ samples: [PredictorSample]) async -> [Result<JSONBytes, PredictionError>] {
        var faults = 0
        var batchErrors = 0
        while true {
            switch await attempt(samples) {
            case .outputs(let results):
                return results
            case .retry:
                continue
            case .unavailable(let error):
                return samples.map { _ in .failure(error) }
            case .batchError(let message):
                batchErrors += 1
                if batchErrors >= 2 {
                    let error = PredictionError(.batch, "predictor '\(config.name)' failed this batch twice: \(message)")
                    return samples.map { _ in .failure(error) }
                }
                logger.warning("predictor failed a batch, retrying it once", metadata: ["flotilla.error": "\(message)"])
            case .fault(let fault):
                faults += 1
                guard faults >= config.maxAttempts else {
                    logger.warning("retrying a batch after a predictor fault", metadata: ["flotilla.fault": "\(fault)", "flotilla.attempt": "\(faults)"])
                    continue
                }
                if config.isolatePoison && samples.count > 1 && phase == .running {
                    return await isolate(samples, after: fault, attempts: faults)
                }
                let error = PredictionError(.fault, "predictor '\(config.name)' \(fault) on this batch \(faults) time\(faults == 1 ? "" : "s")")
                return samples.map { _ in .failure(error) }
            }
        }
    }

    /// Poison isolation: after a batch faulted `attempts` times, tries its halves once each and
    /// bisects the halves that fault, down to single samples, within 2⌈log2 n⌉+1 faulting tries.
    func isolate(_ samples: [PredictorSample], after fault: ProcessFault, attempts: Int) async -> [Result<JSONBytes, PredictionError>] {
        logger.warning("batch failed on every attempt, bisecting it to isolate poison samples", metadata: ["flotilla.fault": "\(fault)", "flotilla.samples": "\(samples.count)"])
        var results = [Result<JSONBytes, PredictionError>?](repeating: nil, count: samples.count)
        var budget = 2 * (Int.bitWidth - (samples.count - 1).leadingZeroBitCount) + 1
        var work: [Range<Int>] = Self.halves(0..<samples.count).reversed()
        while let range = work.popLast() {
            guard budget > 0, phase == .running else {
                let error = PredictionError(.fault, "predictor '\(config.name)' \(fault) on this batch \(attempts) times (and on too many of its parts to isolate the cause)")
                for i in range { results[i] = .failure(error) }
                continue
            }
            switch await attempt(Array(samples[range])) {
            case .outputs(let outputs):
                for (i, output) in zip(range, outputs) { results[i] = output }
            case .retry:
                work.append(range)
            case .batchError(let message):
                for i in range { results[i] = .failure(PredictionError(.batch, "predictor '\(config.name)' failed this batch: \(message)")) }
            case .unavailable(let error):
                for i in range { results[i] = .failure(error) }
            case .fault(let partFault):
                budget -= 1
                if range.count == 1 {
                    results[range.lowerBound] = .failure(PredictionError(.fault, "predictor '\(config.name)' \(partFault) on this sample (alone, after its batch failed \(attempts) times)"))
                } else {
                    work.append(contentsOf: Self.halves(range).reversed())
                }
            }
        }
        return results.map { $0! }
    }

    static func halves(_ range: Range<Int>) -> [Range<Int>] {
        let middle = range.lowerBound + range.count / 2
        return [range.lowerBound..<middle, middle..<range.upperBound]
    }

    /// One try of a batch on one process.
    func attempt(_ samples: [PredictorSample]) async -> Attempt {
        let (id, result, elapsed): (Int, Result<PredictorProcess.Reply, ProcessFault>, Duration)
        switch await dispatch(samples) {
        case .unavailable(let error): return .unavailable(error)
        case .ran(let process, let outcome, let time): (id, result, elapsed) = (process, outcome, time)
        }
        switch result {
        case .failure(let fault):
            guard phase == .running else { return .unavailable(shutDownError) }
            faulted(id, fault)
            return fault == .interrupted ? .retry : .fault(fault)
        case .success(let reply):
            metrics.batchSeconds.recordNanoseconds(Int64(elapsed.seconds * 1e9))
            backoff = config.initialBackoff
            release(id)
            switch reply {
            case .outputs(let outputs):
                return .outputs(outputs)
            case .batchError(let message):
                return .batchError(message)
            }
        }
    }

    var shutDownError: PredictionError {
        if let startFailure { return PredictionError(.unavailable, startFailure) }
        return PredictionError(.unavailable, "predictor '\(config.name)' was shut down")
    }
    var notStartedError: PredictionError { PredictionError(.unavailable, "predictor '\(config.name)' was not started") }
}
