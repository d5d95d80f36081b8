import CRdKafka
import Dispatch
import Foundation
import Logging
import Synchronization

/// Owns one `rd_kafka_t` handle and the context its C callbacks report to.
///
/// `@unchecked Sendable` is safe: librdkafka handles are thread-safe, the pointer never changes,
/// and the handle is destroyed exactly once, in `deinit`, when no Swift code can reach it.
final class KafkaClient: @unchecked Sendable {
    let handle: OpaquePointer
    let context: ClientContext
    /// Blocking librdkafka calls (poll, flush, commit, transactions, admin) run here, never on
    /// Swift's cooperative pool.
    let blockingQueue: DispatchQueue
    let bootstrapServers: String

    init(kind: rd_kafka_type_t, properties: [(String, String)], bootstrapServers: String,
         logger: Logger, configure: (OpaquePointer) -> Void = { _ in }) throws(KafkaError) {
        let conf = try Self.makeConf(properties)
        let context = ClientContext(logger: logger)
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        configure(conf)
        var errstr = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(kind, conf, &errstr, errstr.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError.invalid("cannot create Kafka client: \(errorText(errstr))")
        }
        self.handle = handle
        self.context = context
        self.bootstrapServers = bootstrapServers
        self.blockingQueue = DispatchQueue(label: "flotilla.rdkafka.\(kind == RD_KAFKA_PRODUCER ? "producer" : "consumer")")
    }

    deinit {
        // rd_kafka_destroy waits for the client's threads, up to a fetch wait each (~0.5 s per
        // client measured at a worker's exit): off the caller's thread. The context lives until then.
        // A thread of its own, not Dispatch's pool: that pool also runs Swift's async tasks, and
        // blocking it delayed unrelated work by up to a second (measured).
        nonisolated(unsafe) let handle = handle  // no Swift code can reach it any more
        let context = context
        let thread = Thread {
            rd_kafka_destroy(handle)
            withExtendedLifetime(context) {}
        }
        thread.name = "flotilla-rdkafka-destroy"
        thread.start()
    }

    /// Builds an `rd_kafka_conf_t`, failing with librdkafka's message on an unknown or invalid property.
    static func makeConf(_ properties: [(String, String)]) throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errstr = [CChar](repeating: 0, count: 512)
        for (name, value) in properties where rd_kafka_conf_set(conf, name, value, &errstr, errstr.count) != RD_KAFKA_CONF_OK {
            rd_kafka_conf_destroy(conf)
            throw KafkaError.invalid("invalid Kafka property '\(name)': \(errorText(errstr))")
        }
        return conf
    }

    /// Runs a blocking librdkafka call on this client's dedicated queue.
    func blocking<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            blockingQueue.async { continuation.resume(returning: body()) }
        }
    }

    /// Loads the metadata of `topics` into this client's cache, so the first record produced to
    /// (or the first fetch from) a topic it has not used yet does not wait for librdkafka's
    /// metadata retry: 1-2 s for a topic created a moment before, ~1 s for a partition newly
    /// assigned to a reader (measured on the embedded broker). Best effort; returns the partition
    /// count of each topic it found.
    @discardableResult
    func loadMetadata(for topics: [String], timeout: Duration) async -> [String: Int32] {
        await blocking { [self] in
            var partitions: [String: Int32] = [:]
            for name in topics {
                guard let topic = rd_kafka_topic_new(handle, name, nil) else { continue }
                var metadata: UnsafePointer<rd_kafka_metadata>?
                if rd_kafka_metadata(handle, 0, topic, &metadata, Self.timeoutMs(timeout)) == RD_KAFKA_RESP_ERR_NO_ERROR,
                   let metadata {
                    let m = metadata.pointee
                    for i in 0..<Int(m.topic_cnt) where m.topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && m.topics[i].partition_cnt > 0 {
                        partitions[String(cString: m.topics[i].topic)] = m.topics[i].partition_cnt
                    }
                    rd_kafka_metadata_destroy(metadata)
                }
                rd_kafka_topic_destroy(topic)
            }
            return partitions
        }
    }

    /// A timeout as librdkafka wants it.
    static func timeoutMs(_ duration: Duration) -> Int32 { Int32(clamping: duration.milliseconds) }

    /// The fatal error that put this client out of action, if any.
    var fatalError: KafkaError? {
        var errstr = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &errstr, errstr.count)
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        var error = KafkaError(err, "fatal Kafka client error")
        error.message = "fatal Kafka client error: \(errorText(errstr))"
        error.isFatal = true
        return error
    }

    /// Adds the most recent client-level error (e.g. "Connection refused") to a failure message.
    func explain(_ error: KafkaError) -> KafkaError {
        guard let last = context.lastError, !error.message.contains(last) else { return error }
        var error = error
        error.message += " (last client error: \(last))"
        return error
    }
}

/// What the C callbacks of one client report to. Callbacks only record under a lock or log.
final class ClientContext: Sendable {
    let logger: Logger
    private let state = Mutex(State())

    struct State {
        var lastError: String?
        var rebalanceEvents: [ConsumerEvent] = []
    }

    init(logger: Logger) { self.logger = logger }

    var lastError: String? { state.withLock { $0.lastError } }

    func recordError(_ message: String) { state.withLock { $0.lastError = message } }

    func recordRebalance(_ event: ConsumerEvent) { state.withLock { $0.rebalanceEvents.append(event) } }

    func drainRebalances() -> [ConsumerEvent] {
        state.withLock { state in
            defer { state.rebalanceEvents.removeAll() }
            return state.rebalanceEvents
        }
    }

    static func from(_ rk: OpaquePointer?) -> ClientContext? {
        guard let rk, let opaque = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    }
}

private func logCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ message: UnsafePointer<CChar>?) {
    guard let context = ClientContext.from(rk), let message else { return }
    let logLevel: Logger.Level = switch level {
    case ...3: .error
    case 4: .warning
    case 5, 6: .info
    default: .debug
    }
    context.logger.log(level: logLevel, "librdkafka", metadata: [
        "rdkafka.facility": .string(facility.map { String(cString: $0) } ?? ""),
        "rdkafka.message": .string(String(cString: message)),
    ])
}

private func errorCallback(_ rk: OpaquePointer?, _ err: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let opaque else { return }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    let text = reason.map { String(cString: $0) } ?? String(cString: rd_kafka_err2str(rd_kafka_resp_err_t(err)))
    context.recordError(text)
    context.logger.debug("Kafka client error", metadata: ["rdkafka.error": .string(text)])
}
