import FlotillaCore

/// A predictor that runs inside the worker process, behind the same pool API as a child process.
public protocol BuiltinPredictor: Sendable {
    /// The name a job spec uses (`builtin: hash-embed`).
    var name: String { get }
    /// One output or one error per input, in order. Must not block on I/O.
    func predict(_ inputs: [JSONBytes]) -> [Result<JSONBytes, PredictionError>]
}

/// The builtin predictors, by name.
public enum BuiltinPredictors {
    /// Every builtin's name.
    public static var names: [String] { all.map(\.name) }

    /// The builtin called `name`, or nil.
    public static func named(_ name: String) -> (any BuiltinPredictor)? {
        all.first { $0.name == name }
    }

    private static let all: [any BuiltinPredictor] = [IdentityPredictor(), HashEmbedPredictor()]
}

/// `identity`: the output is the input. For tests, benchmarks and plumbing checks.
public struct IdentityPredictor: BuiltinPredictor {
    public let name = "identity"
    public init() {}
    public func predict(_ inputs: [JSONBytes]) -> [Result<JSONBytes, PredictionError>] {
        inputs.map { .success($0) }
    }
}
