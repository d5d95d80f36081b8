import CRdKafka

/// An error from librdkafka or from this wrapper, with librdkafka's classification.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// librdkafka's error code (`rd_kafka_resp_err_t`); negative codes are client-local.
    public var code: Int32
    /// librdkafka's symbolic name for the code, e.g. `_TRANSPORT`, `MSG_SIZE_TOO_LARGE`.
    public var name: String
    /// A message naming what failed.
    public var message: String
    /// The operation may succeed if simply retried.
    public var isRetriable: Bool
    /// The current transaction must be aborted before anything else (then it may be retried).
    public var requiresAbort: Bool
    /// The client instance is unusable; the process should flush what it can and exit.
    public var isFatal: Bool

    public init(code: Int32, name: String, message: String,
                isRetriable: Bool = false, requiresAbort: Bool = false, isFatal: Bool = false) {
        self.code = code
        self.name = name
        self.message = message
        self.isRetriable = isRetriable
        self.requiresAbort = requiresAbort
        self.isFatal = isFatal
    }

    public var description: String { message }

    /// The broker or the client refuses these records as they are (too large, invalid): sending
    /// them again fails the same way, so the caller must change what it sends.
    public var rejectsRecords: Bool {
        ["MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD", "INVALID_MSG", "INVALID_MSG_SIZE",
         "MESSAGE_TOO_LARGE", "POLICY_VIOLATION"].contains(name)
    }

    /// An error for a librdkafka response code, prefixed with what was being done.
    init(_ err: rd_kafka_resp_err_t, _ context: String) {
        let text = String(cString: rd_kafka_err2str(err))
        self.init(code: err.rawValue, name: String(cString: rd_kafka_err2name(err)), message: "\(context): \(text)")
    }

    /// Takes ownership of an `rd_kafka_error_t` and destroys it.
    init(consuming error: OpaquePointer, _ context: String) {
        defer { rd_kafka_error_destroy(error) }
        self.init(
            code: rd_kafka_error_code(error).rawValue,
            name: String(cString: rd_kafka_error_name(error)),
            message: "\(context): \(String(cString: rd_kafka_error_string(error)))",
            isRetriable: rd_kafka_error_is_retriable(error) != 0,
            requiresAbort: rd_kafka_error_txn_requires_abort(error) != 0,
            isFatal: rd_kafka_error_is_fatal(error) != 0
        )
    }

    /// A configuration or usage error raised by this wrapper itself.
    static func invalid(_ message: String) -> KafkaError {
        KafkaError(code: RD_KAFKA_RESP_ERR__INVALID_ARG.rawValue, name: "_INVALID_ARG", message: message)
    }

    public static let timedOutCode = RD_KAFKA_RESP_ERR__TIMED_OUT.rawValue
    static let queueFullCode = RD_KAFKA_RESP_ERR__QUEUE_FULL.rawValue
}

extension KafkaError {
    /// Throws when `error` is non-nil, consuming it.
    static func check(_ error: OpaquePointer?, _ context: @autoclosure () -> String) throws(KafkaError) {
        if let error { throw KafkaError(consuming: error, context()) }
    }

    /// Throws when `err` is not `NO_ERROR`.
    static func check(_ err: rd_kafka_resp_err_t, _ context: @autoclosure () -> String) throws(KafkaError) {
        if err != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(err, context()) }
    }
}

/// The text librdkafka wrote into an error buffer.
func errorText(_ buffer: [CChar]) -> String {
    buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}
