#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore
import Logging

/// The child's side: its stdout frames, handed to the requests they answer, and its stderr lines.
extension PredictorProcess {
    /// Starts reading the child: stderr lines on a thread of their own, stdout frames on the pipe loop.
    func startReaders() {
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
        // Stdout (non-blocking since the spawn) is read by the pipe loop, which acts on a reply on
        // the thread that read it; once it ends, a thread of its own waits for the child to exit and reaps it.
        let frames = FrameBox()
        PipeLoop.shared.watch(child.stdoutFD) { [self] in
            if readFrames(&frames.assembler) { return true }
            close(child.stdoutFD)
            PipeIO.startThread(name: "flotilla-\(stage)-x\(child.pid)") { [self] in
                // End of stdout usually means the child is exiting (Python closes its streams while it
                // finalises): give it a moment so its own exit status, not our SIGKILL, is reported.
                let (stopping, faulted) = state.withLock { ($0.stopping, $0.fault != nil) }
                if !stopping && !faulted && !child.hasExited(within: .seconds(1)) { child.signal(SIGKILL) }
                finish(child.waitForExit())
            }
            return false
        }
    }

    /// Reads and delivers the frames stdout holds now: true to wait for more, false at its end
    /// or after a protocol violation.
    private func readFrames(_ frames: inout FrameAssembler) -> Bool {
        while true {
            switch frames.next(child.stdoutFD, limit: PredictorProtocol.maxFrameBytes) {
            case .wait:
                return true
            case .end:
                return false
            case .tooLarge(let length):
                let text = String(decoding: withUnsafeBytes(of: UInt32(length).bigEndian) { Array($0) }, as: UTF8.self)
                fault(.protocolViolation("a frame header announces \(length) bytes, over the \(PredictorProtocol.maxFrameBytes)-byte limit; stdout began with \"\(text.debugEscaped)\" — is something printing to stdout?"))
                return false
            case .frame(let payload):
                let message: ChildMessage
                do {
                    message = try ChildMessage(payload: payload)
                } catch {
                    fault(.protocolViolation(error.description))
                    return false
                }
                if !deliver(message) { return false }
            }
        }
    }

    /// Hands a message to the request it answers (the oldest); false after a violation.
    private func deliver(_ message: ChildMessage) -> Bool {
        enum Action {
            case none
            case hello(CheckedContinuation<Result<Hello, ProcessFault>, Never>, Hello)
            case reply(ReplyHandler, Reply)
            case violation(String)
        }
        let action: Action = state.withLock { state in
            if state.fault != nil { return .none }
            switch message {
            case .hello(let name, let maxBatch, let columns):
                guard let waiter = state.helloWaiter else { return .violation("unexpected hello frame after the handshake") }
                let hello = Hello(name: name, maxBatch: maxBatch, columns: columns)
                state.hello = hello
                state.helloWaiter = nil
                state.deadline = nil
                return .hello(waiter, hello)
            case .result(let replySeq, _), .batchError(let replySeq, _):
                guard let head = state.batches.first else {
                    return .violation("unexpected \(message.kind) frame while \(state.helloWaiter == nil ? "idle" : "waiting for the hello")")
                }
                guard replySeq == head.seq else { return .violation("reply for seq \(replySeq) while waiting for seq \(head.seq)") }
                let reply: Reply
                switch message {
                case .result(_, let outputs):
                    guard outputs.count == head.count else {
                        return .violation("result for seq \(head.seq) has \(outputs.count) outputs for \(head.count) samples")
                    }
                    reply = .outputs(outputs)
                case .batchError(_, let text): reply = .batchError(text)
                case .hello: preconditionFailure("handled above")
                }
                state.batches.removeFirst()
                advanceDeadline(&state)
                return .reply(head.reply, reply)
            }
        }
        switch action {
        case .none: return true
        case .hello(let continuation, let hello): continuation.resume(returning: .success(hello))
        case .reply(let handler, let reply): handler(.success(reply))
        case .violation(let why):
            fault(.protocolViolation(why))
            return false
        }
        return true
    }
}
