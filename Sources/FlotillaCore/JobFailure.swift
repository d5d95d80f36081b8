/// Why a job stopped before its shards were done, or ended with too many failed samples.
public struct JobFailure: Sendable, Hashable, Codable, CustomStringConvertible {
    public struct Kind: RawRepresentable, Sendable, Hashable, Codable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// A stage's predictor cannot start, on every worker that tried (exit 2).
        public static let predictorStart = Kind(rawValue: "predictor-start")
        /// More samples failed than `faults.maxErrorRate` allows (exit 4).
        public static let errorBudget = Kind(rawValue: "error-budget")
    }

    public var kind: Kind
    public var message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    /// The documented exit status of a job that ended this way.
    public var exitCode: Int32 { kind == .predictorStart ? 2 : 4 }

    public var description: String { message }
}

/// A worker that could not start and will not by being restarted: its own report, sent on the
/// heartbeats topic just before it exits (`HeartbeatRecord.failure`).
public struct WorkerFailure: Sendable, Hashable, Codable {
    /// The error as the worker would print it: the stage, the command, its last stderr lines.
    public var message: String
    /// True for errors a restart does not mend (a predictor that cannot start, a bad stage);
    /// false for ones that may pass (the broker unreachable).
    public var permanent: Bool

    public init(message: String, permanent: Bool) {
        self.message = message
        self.permanent = permanent
    }
}

/// One error message and how many samples ended with it.
public struct ErrorCount: Sendable, Hashable, Codable {
    public var message: String
    public var count: Int

    public init(message: String, count: Int) {
        self.message = message
        self.count = count
    }

    /// Messages are cut to this many characters: a count is about the kind of error, and a
    /// record must stay small.
    public static let maxMessageLength = 300

    /// The `limit` most common of `messages`, most common first (ties by text), each cut to
    /// `maxMessageLength`.
    public static func top<S: Sequence>(_ messages: S, limit: Int) -> [ErrorCount] where S.Element == (String, Int) {
        var counts: [String: Int] = [:]
        for (message, count) in messages { counts[String(message.prefix(maxMessageLength)), default: 0] += count }
        return counts.map { ErrorCount(message: $0.key, count: $0.value) }
            .sorted { ($0.count, $1.message) > ($1.count, $0.message) }
            .prefix(limit).map { $0 }
    }
}
