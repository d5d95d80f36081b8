import Dispatch
import FlotillaCore

extension PredictorProcess {
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

    /// What the write lock guards.
    struct Writes {
        /// Writes handed to the writer thread and not yet done.
        var queued = 0
        /// The last `pipelineDepth` frames sent, oldest first. Lent to the pipe, a frame must live
        /// until the child has read it; the child reads a frame before it answers it, and a frame
        /// is sent only when at most `pipelineDepth - 1` are unanswered, so the one it pushes out
        /// is answered.
        var lent: [[UInt8]] = []
    }

    /// Gets a batch's reply or fault, once.
    typealias ReplyHandler = @Sendable (Result<Reply, ProcessFault>) -> Void

    struct PendingBatch {
        let seq: Int64
        let count: Int
        let timeout: Duration
        let reply: ReplyHandler
    }

    /// What the process's threads and callers share, under its lock.
    struct State {
        /// Waiting for the hello frame (seq 1, before any batch).
        var helloWaiter: CheckedContinuation<Result<Hello, ProcessFault>, Never>?
        /// Batches sent and not answered, oldest first: the order the child answers in.
        var batches: [PendingBatch] = []
        /// The oldest request's deadline (hello or batch), checked when the timer fires.
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

        /// Everything still waiting for an answer, now taken out of the state.
        mutating func takeWaiting() -> Waiting {
            defer {
                helloWaiter = nil
                batches = []
            }
            return Waiting(hello: helloWaiter, batches: batches.map(\.reply))
        }
    }
}

/// The requests a process still owed when it ended, taken out of its state to be failed.
struct Waiting {
    var hello: CheckedContinuation<Result<PredictorProcess.Hello, ProcessFault>, Never>?
    var batches: [PredictorProcess.ReplyHandler]

    /// The oldest gets `fault`; batches behind a batch get `.interrupted` (the fault was not theirs).
    func fail(with fault: ProcessFault) {
        hello?.resume(returning: .failure(fault))
        for (position, batch) in batches.enumerated() {
            batch(.failure(position == 0 || fault == .stopped ? fault : .interrupted))
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
