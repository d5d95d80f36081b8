#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import FlotillaCore
import Logging
import Synchronization

/// One predictor child process speaking the framed protocol: handshake, one batch at a time,
/// per-batch timeout, fault detection (exit, crash, hang, junk) and clean shutdown.
///
/// Threads: a reader for stdout (frames), a reader for stderr (log lines) and a writer for stdin,
/// all dedicated; async callers only wait on continuations. Every fault kills the process group
/// with SIGKILL; the stdout reader then reaps the child, so no zombie is left.
final class PredictorProcess: Sendable {
    enum Reply: Sendable, Equatable {
        case outputs([Result<JSONBytes, PredictionError>])
        case batchError(String)
    }

    struct Hello: Sendable, Equatable {
        var name: String
        var maxBatch: Int?
        /// The child takes predict frames as `ids`/`inputs` columns.
        var columns = false
    }

    private enum Pending {
        case hello(CheckedContinuation<Result<Hello, ProcessFault>, Never>)
        case batch(seq: Int64, count: Int, CheckedContinuation<Result<Reply, ProcessFault>, Never>)
    }

    private struct State {
        var pending: Pending?
        /// The outstanding request's deadline (hello or batch), checked when the timer fires.
        var deadline: (seq: Int64, at: DispatchTime, timeout: Duration)?
        var nextSeq: Int64 = 1
        var fault: ProcessFault?
        var stopping = false
        var exited: ExitStatus?
        var exitWaiters: [Int: CheckedContinuation<Bool, Never>] = [:]
        var nextWaiter = 0
        var stderrTail: [String] = []
        var stderrDone = false
        var hello: Hello?
    }

    let stage: String
    let argv: [String]
    private let child: ChildProcess
    private let logger: Logger
    private let writer: SerialThread
    private let state = Mutex(State())
    private let deadlineTimer = DeadlineTimer()
    private let onUnexpectedExit: @Sendable (ProcessFault) -> Void

    var pid: Int32 { child.pid }
    /// The child's hello, once received.
    var hello: Hello? { state.withLock { $0.hello } }
    /// False once the process has faulted, been stopped or exited.
    var isHealthy: Bool { state.withLock { $0.fault == nil && !$0.stopping && $0.exited == nil } }

    private init(stage: String, argv: [String], child: ChildProcess, logger: Logger, onUnexpectedExit: @escaping @Sendable (ProcessFault) -> Void) {
        self.stage = stage
        self.argv = argv
        self.child = child
        var logger = logger
        logger[metadataKey: "flotilla.stage"] = "\(stage)"
        logger[metadataKey: "flotilla.pid"] = "\(child.pid)"
        self.logger = logger
        self.onUnexpectedExit = onUnexpectedExit
        self.writer = SerialThread(name: "flotilla-\(stage)-w\(child.pid)", setup: PipeIO.blockSIGPIPEOnThisThread)
        deadlineTimer.onFire { [weak self] in self?.deadlinePassed() }
    }

    /// Spawns the child and waits for its hello frame.
    /// - Parameter onUnexpectedExit: called once (on a private thread) if the process dies or is
    ///   killed for a fault while not being shut down.
    static func launch(
        stage: String, argv: [String], environment: [String: String], workingDirectory: String?,
        startupTimeout: Duration, logger: Logger, onUnexpectedExit: @escaping @Sendable (ProcessFault) -> Void = { _ in }
    ) async throws(FlotillaError) -> PredictorProcess {
        let child = try ChildProcess.spawn(argv: argv, environment: environment, workingDirectory: workingDirectory)
        let process = PredictorProcess(stage: stage, argv: argv, child: child, logger: logger, onUnexpectedExit: onUnexpectedExit)
        process.startReaders()
        let result = await withCheckedContinuation { continuation in
            process.begin(.hello(continuation), timeout: startupTimeout)
        }
        switch result {
        case .success(let hello):
            process.logger.debug("predictor started", metadata: ["flotilla.predictor": "\(hello.name)", "flotilla.maxBatch": "\(hello.maxBatch.map(String.init) ?? "none")"])
            return process
        case .failure(let fault):
            process.kill()
            // Let the stderr reader catch the child's last words: they usually say what is wrong.
            for _ in 0..<50 where !process.state.withLock({ $0.stderrDone }) {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let tail = process.state.withLock { $0.stderrTail }
            var message = "predictor '\(stage)' (\(argv.joined(separator: " "))) \(fault) before sending its hello frame"
            if !tail.isEmpty { message += "; its stderr ended with: \(tail.suffix(5).joined(separator: " | "))" }
            throw FlotillaError(.predictor, message)
        }
    }

    /// Runs one batch. Faults come back as `.failure`; the process is then dead.
    func run(_ samples: [PredictorSample], timeout: Duration) async -> Result<Reply, ProcessFault> {
        // The pool runs one batch at a time per process, so the next seq is the one `begin` assigns.
        let frame = PredictorProtocol.predictFrame(seq: state.withLock { $0.nextSeq }, samples: samples,
                                                   columns: hello?.columns ?? false)
        guard frame.count - 4 <= PredictorProtocol.maxFrameBytes else {
            // Not the process's fault: report it without killing anything.
            return .success(.batchError("the batch's request frame is \(frame.count) bytes, over the \(PredictorProtocol.maxFrameBytes)-byte limit; use a smaller batch size"))
        }
        return await withCheckedContinuation { continuation in
            guard let seq = begin(.batch(seq: 0, count: samples.count, continuation), timeout: timeout) else { return }
            writer.submit { [self] in
                if let error = PipeIO.writeAll(child.stdinFD, frame) {
                    // EPIPE: the child closed its stdin, so it is most likely exiting; give the stdout
                    // reader a moment to report the exit status before calling it a write failure.
                    DispatchQueue.global().asyncAfter(deadline: .now() + 1) { [self] in
                        fault(.writeFailed(error), onlyIfSeq: seq)
                    }
                }
            }
        }
    }

    /// Stops the process: shutdown frame and EOF, then SIGTERM, then SIGKILL, `grace` apart; reaps it.
    func shutdown(grace: Duration) async {
        let alreadyExited = state.withLock { state in
            state.stopping = true
            return state.exited != nil
        }
        if alreadyExited { return }
        writer.submit { [child] in
            _ = PipeIO.writeAll(child.stdinFD, PredictorProtocol.shutdownFrame)
            child.closeStdin()
        }
        writer.finish()
        if await waitForExit(timeout: grace) { return }
        logger.warning("predictor did not exit after its shutdown frame, sending SIGTERM")
        child.signal(SIGTERM)
        if await waitForExit(timeout: grace) { return }
        logger.warning("predictor did not exit after SIGTERM, sending SIGKILL")
        child.signal(SIGKILL)
        _ = await waitForExit(timeout: nil)
    }

    /// Kills the process group at once (SIGKILL); the reader thread reaps it.
    func kill() {
        state.withLock { $0.stopping = true }
        child.signal(SIGKILL)
    }

    /// Waits until the child has been reaped, or `timeout` has passed (returns false).
    func waitForExit(timeout: Duration?) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let id: Int? = state.withLock { state in
                if state.exited != nil { return nil }
                state.nextWaiter += 1
                state.exitWaiters[state.nextWaiter] = continuation
                return state.nextWaiter
            }
            guard let id else { return continuation.resume(returning: true) }
            if let timeout {
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout.seconds) { [self] in
                    state.withLock { $0.exitWaiters.removeValue(forKey: id) }?.resume(returning: false)
                }
            }
        }
    }

    // MARK: - Internals

    /// Registers the pending request and its timer; returns its seq, or nil after resuming it with
    /// the fault that already ended this process.
    @discardableResult
    private func begin(_ pending: Pending, timeout: Duration) -> Int64? {
        enum Outcome { case started(Int64), failed(ProcessFault) }
        let outcome: Outcome = state.withLock { state in
            if let fault = state.fault { return .failed(fault) }
            if state.stopping || state.exited != nil { return .failed(.stopped) }
            if state.pending != nil { return .failed(.protocolViolation("internal: a batch was sent while another was running")) }
            let seq = state.nextSeq
            state.nextSeq += 1
            switch pending {
            case .hello: state.pending = pending
            case .batch(_, let count, let continuation): state.pending = .batch(seq: seq, count: count, continuation)
            }
            let at = DispatchTime.now() + timeout.seconds
            state.deadline = (seq, at, timeout)
            deadlineTimer.arm(at: at)
            return .started(seq)
        }
        switch outcome {
        case .started(let seq): return seq
        case .failed(let fault):
            Self.resume(pending, with: fault)
            return nil
        }
    }

    /// The timer fired: fault the outstanding request if its deadline has really passed (the timer
    /// may have been armed for an earlier request).
    private func deadlinePassed() {
        guard let deadline = state.withLock({ $0.deadline }) else { return }
        guard DispatchTime.now() >= deadline.at else {
            // Fired early (or for an earlier schedule): wait for the real deadline.
            deadlineTimer.arm(at: deadline.at)
            return
        }
        fault(.hung(deadline.timeout), onlyIfSeq: deadline.seq)
    }

    private static func resume(_ pending: Pending, with fault: ProcessFault) {
        switch pending {
        case .hello(let continuation): continuation.resume(returning: .failure(fault))
        case .batch(_, _, let continuation): continuation.resume(returning: .failure(fault))
        }
    }

    /// Records the first fault, kills the process and fails the pending request.
    /// With `onlyIfSeq`, only if that request is still the pending one (timers, write failures).
    private func fault(_ fault: ProcessFault, onlyIfSeq seq: Int64? = nil) {
        let pending: Pending?? = state.withLock { state in
            if state.fault != nil || state.exited != nil { return .none }
            if let seq {
                // Seqs are per request; a hello has the seq of the first request slot.
                switch state.pending {
                case .batch(let pendingSeq, _, _) where pendingSeq == seq: break
                case .hello where seq == 1 && state.hello == nil: break
                default: return .none
                }
            }
            state.fault = fault
            state.deadline = nil
            defer { state.pending = nil }
            return .some(state.pending)
        }
        guard case .some(let pending) = pending else { return }
        logger.warning("predictor fault, killing it", metadata: ["flotilla.fault": "\(fault)"])
        child.signal(SIGKILL)
        if let pending { Self.resume(pending, with: fault) }
    }

    private func startReaders() {
        PipeIO.startThread(name: "flotilla-\(stage)-e\(child.pid)") { [self] in
            PipeIO.forEachLine(child.stderrFD) { line in
                state.withLock { state in
                    state.stderrTail.append(line)
                    if state.stderrTail.count > 20 { state.stderrTail.removeFirst() }
                }
                logger.info("\(line)")
            }
            state.withLock { $0.stderrDone = true }
        }
        PipeIO.startThread(name: "flotilla-\(stage)-r\(child.pid)") { [self] in
            readFrames()
            close(child.stdoutFD)
            // End of stdout usually means the child is exiting (Python closes its streams while it
            // finalises): give it a moment so its own exit status, not our SIGKILL, is reported.
            let (stopping, faulted) = state.withLock { ($0.stopping, $0.fault != nil) }
            if !stopping && !faulted && !child.hasExited(within: .seconds(1)) { child.signal(SIGKILL) }
            let status = child.waitForExit()
            finish(status)
        }
    }

    /// The stdout loop: returns at end of stream or after a protocol violation.
    private func readFrames() {
        while true {
            switch PipeIO.readFrame(child.stdoutFD, limit: PredictorProtocol.maxFrameBytes) {
            case .endOfStream, .failed:
                return
            case .tooLarge(let length):
                let text = String(decoding: withUnsafeBytes(of: UInt32(length).bigEndian) { Array($0) }, as: UTF8.self)
                fault(.protocolViolation("a frame header announces \(length) bytes, over the \(PredictorProtocol.maxFrameBytes)-byte limit; stdout began with \"\(text.debugEscaped)\" — is something printing to stdout?"))
                return
            case .frame(let payload):
                let message: ChildMessage
                do {
                    message = try ChildMessage(payload: payload)
                } catch {
                    fault(.protocolViolation(error.description))
                    return
                }
                if !deliver(message) { return }
            }
        }
    }

    /// Hands a message to the pending request; false after a violation.
    private func deliver(_ message: ChildMessage) -> Bool {
        enum Action {
            case none
            case hello(CheckedContinuation<Result<Hello, ProcessFault>, Never>, Hello)
            case reply(CheckedContinuation<Result<Reply, ProcessFault>, Never>, Reply)
            case violation(String)
        }
        let action: Action = state.withLock { state in
            if state.fault != nil { return .none }
            switch (state.pending, message) {
            case (.hello(let continuation), .hello(let name, let maxBatch, let columns)):
                let hello = Hello(name: name, maxBatch: maxBatch, columns: columns)
                state.hello = hello
                state.pending = nil
                state.deadline = nil
                return .hello(continuation, hello)
            case (.batch(let seq, let count, let continuation), .result(let replySeq, let outputs)) where replySeq == seq:
                guard outputs.count == count else {
                    return .violation("result for seq \(seq) has \(outputs.count) outputs for \(count) samples")
                }
                state.pending = nil
                state.deadline = nil
                return .reply(continuation, .outputs(outputs))
            case (.batch(let seq, _, let continuation), .batchError(let replySeq, let text)) where replySeq == seq:
                state.pending = nil
                state.deadline = nil
                return .reply(continuation, .batchError(text))
            case (.batch(let seq, _, _), .result(let replySeq, _)), (.batch(let seq, _, _), .batchError(let replySeq, _)):
                return .violation("reply for seq \(replySeq) while waiting for seq \(seq)")
            case (_, let unexpected):
                return .violation("unexpected \(unexpected.kind) frame while \(state.pending == nil ? "idle" : "waiting for another reply")")
            }
        }
        switch action {
        case .none: return true
        case .hello(let continuation, let hello): continuation.resume(returning: .success(hello))
        case .reply(let continuation, let reply): continuation.resume(returning: .success(reply))
        case .violation(let why):
            fault(.protocolViolation(why))
            return false
        }
        return true
    }

    /// After reaping: records the end, fails anything still waiting and tells the pool.
    private func finish(_ status: ExitStatus) {
        let (pending, waiters, fault, stopping) = state.withLock { state in
            state.exited = status
            let stopping = state.stopping
            if state.fault == nil && !stopping { state.fault = .exited(status) }
            state.deadline = nil
            let pending = state.pending
            state.pending = nil
            let waiters = Array(state.exitWaiters.values)
            state.exitWaiters.removeAll()
            return (pending, waiters, state.fault ?? .stopped, stopping)
        }
        writer.finish()
        deadlineTimer.cancel()
        child.closeStdin()
        if let pending { Self.resume(pending, with: fault) }
        for waiter in waiters { waiter.resume(returning: true) }
        if !stopping {
            logger.warning("predictor ended", metadata: ["flotilla.fault": "\(fault)", "flotilla.exit": "\(status)"])
            onUnexpectedExit(fault)
        } else {
            logger.debug("predictor exited", metadata: ["flotilla.exit": "\(status)"])
        }
    }
}

extension ChildMessage {
    var kind: String {
        switch self {
        case .hello: "hello"
        case .result: "result"
        case .batchError: "error"
        }
    }
}

extension String {
    /// Control characters escaped, for quoting junk in error messages.
    var debugEscaped: String {
        String(unicodeScalars.flatMap { scalar -> [Character] in
            scalar.value < 0x20 || scalar.value == 0x7f ? Array(scalar.escaped(asASCII: true)) : [Character(scalar)]
        })
    }
}

/// One reusable timer per process for hello and batch deadlines: a timer per batch would leave
/// thousands of cancelled timers queued at high batch rates.
///
/// Armed lazily: a later deadline than the one armed leaves the timer alone, and the handler
/// re-arms for the real deadline when it fires early. Re-scheduling on every batch woke
/// libdispatch's timer thread a few times per batch (~480 wake-ups/s at 175 batches/s, measured).
final class DeadlineTimer: @unchecked Sendable {
    // Unchecked: DispatchSource objects are thread-safe; `armedAt` is behind its mutex.
    private let source: any DispatchSourceTimer
    private let armedAt = Mutex<DispatchTime?>(nil)

    init() {
        source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    /// `handler` runs when an armed time is reached; it must re-arm if its deadline moved on.
    func onFire(_ handler: @escaping @Sendable () -> Void) {
        source.setEventHandler { [weak self] in
            self?.armedAt.withLock { $0 = nil }
            handler()
        }
    }

    /// Fires at `deadline` or earlier (when an earlier time is already armed).
    func arm(at deadline: DispatchTime) {
        let schedule = armedAt.withLock { armed in
            if let armed, armed <= deadline { return false }
            armed = deadline
            return true
        }
        if schedule { source.schedule(deadline: deadline) }
    }

    func cancel() { source.cancel() }
}
