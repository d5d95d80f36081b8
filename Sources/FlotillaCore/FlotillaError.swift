/// An error a user can act on: an opaque code, a message naming the problem, and where it came from.
///
/// `code` decides the exit status (`exitCode`); `message` is printed as is, so it must say what is
/// wrong and, where there is one, the place ("shard.samples must be > 0 (job.yaml:7)").
public struct FlotillaError: Error, Sendable, CustomStringConvertible {
    /// Kinds of failure, opaque so that new ones can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The job spec or a command-line option is wrong.
        public static let invalidConfiguration = Code("invalid-configuration")
        /// An input file, URL or record is missing, unreadable or malformed.
        public static let invalidInput = Code("invalid-input")
        /// Kafka could not be reached or answered with an error.
        public static let kafka = Code("kafka")
        /// A predictor process failed.
        public static let predictor = Code("predictor")
        /// A record could not be encoded or decoded.
        public static let codec = Code("codec")
        /// Anything else.
        public static let `internal` = Code("internal")
    }

    public var code: Code
    public var message: String
    /// The error underneath, when there is one.
    public var underlying: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        guard let underlying else { return message }
        return "\(message): \(underlying)"
    }

    /// The process exit status for this error: 2 for bad input or configuration, else 1.
    public var exitCode: Int32 {
        switch code {
        case .invalidConfiguration, .invalidInput: 2
        default: 1
        }
    }
}
