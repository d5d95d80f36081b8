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
}

/// The requests a process still owed when it ended, taken out of its state to be failed.
struct Waiting {
    var hello: CheckedContinuation<Result<PredictorProcess.Hello, ProcessFault>, Never>?
    var batches: [CheckedContinuation<Result<PredictorProcess.Reply, ProcessFault>, Never>]

    /// The oldest gets `fault`; batches behind a batch get `.interrupted` (the fault was not theirs).
    func fail(with fault: ProcessFault) {
        hello?.resume(returning: .failure(fault))
        for (position, batch) in batches.enumerated() {
            batch.resume(returning: .failure(position == 0 || fault == .stopped ? fault : .interrupted))
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
