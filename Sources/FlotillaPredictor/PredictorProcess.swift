#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import FlotillaCore
import Logging
import Synchronization

/// One predictor child process speaking the framed protocol: handshake, batches (up to
/// `pipelineDepth` sent ahead, answered in order), per-batch timeout, fault detection (exit,
/// crash, hang, junk) and clean shutdown.
///
/// Pipelining: the next batch's frame waits in the child's stdin while it computes the current
/// one, so it starts at once (without it, the fast model reached 0.71x of its script where CPU
/// allowed 0.86x). A batch's timeout runs from when it is the oldest unanswered one.
///
/// Threads: stdout (frames) is read by the shared `PipeLoop`, stderr (log lines) by a thread of
/// its own. A batch's frame is encoded and lent to the pipe by its caller while the pipe has room
/// (a writer thread woken per batch was a tenth of a fast model's worker CPU); what does not fit
/// goes to a dedicated writer thread, with every frame after it. Every fault kills the process
/// group with SIGKILL; when stdout ends, a thread reaps the child, so no zombie is left.
final class PredictorProcess: Sendable {
    /// Batches a process holds at most: the one it computes and the next, already in its stdin.
    static let pipelineDepth = 2

    let stage: String
    let argv: [String]
    let child: ChildProcess
    let logger: Logger
    private let writer: SerialThread
    let state = Mutex(State())
    /// Held while a seq is given and its frame written, so frames reach the pipe in seq order (the
    /// order the child answers in). Taken before `state`, never after.
    private let writes = Mutex(Writes())
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
            process.beginHello(continuation, timeout: startupTimeout)
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

    /// Runs one batch; up to `pipelineDepth` may run at once. Faults come back as `.failure`;
    /// the process is then dead, and a batch that waited behind the faulting one gets `.interrupted`.
    func run(_ samples: [PredictorSample], timeout: Duration) async -> Result<Reply, ProcessFault> {
        await withCheckedContinuation { continuation in
            submit(samples, timeout: timeout) { continuation.resume(returning: $0) }
        }
    }

    /// `run` without waiting: sends the batch and returns; `reply` is called once with what `run`
    /// would return, from the pipe loop's thread (or at once when the batch is refused).
    func submit(_ samples: [PredictorSample], timeout: Duration, reply: @escaping ReplyHandler) {
        writes.withLock { writes in
            let admitted: Result<(seq: Int64, columns: Bool), ProcessFault> = state.withLock { state in
                if let fault = state.fault { return .failure(fault) }
                if state.stopping || state.exited != nil { return .failure(.stopped) }
                guard state.batches.count < Self.pipelineDepth else {
                    return .failure(.protocolViolation("internal: more than \(Self.pipelineDepth) batches sent at once"))
                }
                let seq = state.nextSeq
                state.nextSeq += 1
                state.batches.append(PendingBatch(seq: seq, count: samples.count, timeout: timeout, reply: reply))
                if state.batches.count == 1 { startDeadline(&state, seq: seq, timeout: timeout) }
                return .success((seq, state.hello?.columns ?? false))
            }
            switch admitted {
            case .success(let batch): send(seq: batch.seq, samples, columns: batch.columns, writes: &writes)
            case .failure(let refused): reply(.failure(refused))
            }
        }
    }

    /// Under `writes`: encodes batch `seq`'s frame and writes what the pipe takes now; the rest,
    /// or all of it while earlier frames wait for room, goes to the writer thread. The frame is
    /// lent to the pipe, not copied, and kept in `writes.lent` until the child must have read it.
    private func send(seq: Int64, _ samples: [PredictorSample], columns: Bool, writes: inout Writes) {
        let frame = PredictorProtocol.predictFrame(seq: seq, samples: samples, columns: columns)
        guard frame.count - 4 <= PredictorProtocol.maxFrameBytes else {
            // Not the process's fault: answered here and never sent, so the child's seqs stay in order.
            answer(seq, .batchError("the batch's request frame is \(frame.count) bytes, over the \(PredictorProtocol.maxFrameBytes)-byte limit; use a smaller batch size"))
            return
        }
        writes.lent.append(frame)
        if writes.lent.count > Self.pipelineDepth { writes.lent.removeFirst() }
        var written = 0
        if writes.queued == 0 {
            switch PipeIO.writeNow(child.stdinFD, frame, lend: true) {
            case .complete: return
            case .partial(let count): written = count
            case .failed(let error): return writeFailed(seq: seq, error)
            }
        }
        writes.queued += 1
        writer.submit { [self, written] in
            let error = PipeIO.writeAll(child.stdinFD, frame, from: written, lend: true)
            self.writes.withLock { $0.queued -= 1 }
            if let error { writeFailed(seq: seq, error) }
        }
    }

    /// EPIPE: the child closed its stdin, so it is most likely exiting; gives the stdout's end a
    /// moment to report the exit status before calling it a write failure.
    private func writeFailed(seq: Int64, _ error: String) {
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { [self] in
            fault(.writeFailed(error), onlyIfSeq: seq)
        }
    }

    /// Answers batch `seq` without the child (it was never sent).
    private func answer(_ seq: Int64, _ reply: Reply) {
        let handler = state.withLock { state -> ReplyHandler? in
            guard let index = state.batches.firstIndex(where: { $0.seq == seq }) else { return nil }
            let batch = state.batches.remove(at: index)
            if index == 0 { advanceDeadline(&state) }
            return batch.reply
        }
        handler?(.success(reply))
    }

    /// Stops the process: shutdown frame and EOF, then SIGTERM, then SIGKILL, `grace` apart; reaps it.
    func shutdown(grace: Duration) async {
        let alreadyExited = state.withLock { state in
            state.stopping = true
            return state.exited != nil
        }
        if alreadyExited { return }
        // After every frame already written or queued.
        writes.withLock { writes in
            writes.queued += 1
            writer.submit { [child] in
                _ = PipeIO.writeAll(child.stdinFD, PredictorProtocol.shutdownFrame)
                child.closeStdin()
            }
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

    /// Kills the process group at once (SIGKILL); it is reaped when its stdout ends.
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

    /// Registers the wait for the hello frame (seq 1) and its timer.
    private func beginHello(_ continuation: CheckedContinuation<Result<Hello, ProcessFault>, Never>, timeout: Duration) {
        let refused: ProcessFault? = state.withLock { state in
            if let fault = state.fault { return fault }
            if state.stopping || state.exited != nil { return .stopped }
            let seq = state.nextSeq
            state.nextSeq += 1
            state.helloWaiter = continuation
            startDeadline(&state, seq: seq, timeout: timeout)
            return nil
        }
        if let refused { continuation.resume(returning: .failure(refused)) }
    }

    /// The oldest request's clock starts: the child turns to it now, as far as the worker can tell.
    private func startDeadline(_ state: inout State, seq: Int64, timeout: Duration) {
        let at = DispatchTime.now() + timeout.seconds
        state.deadline = (seq, at, timeout)
        deadlineTimer.arm(at: at)
    }

    /// The oldest batch was answered: the next one's clock starts, if there is one.
    func advanceDeadline(_ state: inout State) {
        if let next = state.batches.first {
            startDeadline(&state, seq: next.seq, timeout: next.timeout)
        } else {
            state.deadline = nil
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

    /// Records the first fault, kills the process and fails what waits: the oldest request with
    /// `fault`, batches behind it with `.interrupted`. With `onlyIfSeq`, only if that request is
    /// still waiting (timers, write failures).
    func fault(_ fault: ProcessFault, onlyIfSeq seq: Int64? = nil) {
        let waiting: Waiting? = state.withLock { state in
            if state.fault != nil || state.exited != nil { return nil }
            if let seq {
                // A hello has the seq of the first request slot.
                let hello = seq == 1 && state.helloWaiter != nil && state.hello == nil
                guard hello || state.batches.contains(where: { $0.seq == seq }) else { return nil }
            }
            state.fault = fault
            state.deadline = nil
            return state.takeWaiting()
        }
        guard let waiting else { return }
        logger.warning("predictor fault, killing it", metadata: ["flotilla.fault": "\(fault)"])
        child.signal(SIGKILL)
        waiting.fail(with: fault)
    }

    /// After reaping: records the end, fails anything still waiting and tells the pool.
    func finish(_ status: ExitStatus) {
        let (waiting, waiters, fault, stopping) = state.withLock { state in
            state.exited = status
            let stopping = state.stopping
            if state.fault == nil && !stopping { state.fault = .exited(status) }
            state.deadline = nil
            let waiters = Array(state.exitWaiters.values)
            state.exitWaiters.removeAll()
            return (state.takeWaiting(), waiters, state.fault ?? .stopped, stopping)
        }
        // Not while a frame is being written: a closed descriptor's number can be reused at once.
        writes.withLock { writes in
            writes.lent.removeAll()
            if writes.queued == 0 { child.closeStdin() } else { writer.submit { [child] in child.closeStdin() } }
        }
        writer.finish()
        deadlineTimer.cancel()
        waiting.fail(with: fault)
        for waiter in waiters { waiter.resume(returning: true) }
        if !stopping {
            logger.warning("predictor ended", metadata: ["flotilla.fault": "\(fault)", "flotilla.exit": "\(status)"])
            onUnexpectedExit(fault)
        } else {
            logger.debug("predictor exited", metadata: ["flotilla.exit": "\(status)"])
        }
    }
}
