import CRdKafka
import Foundation
import Logging
import Synchronization

/// A Kafka producer: asynchronous delivery reports, idempotent by default, optional transactions.
///
/// A dedicated thread serves librdkafka's delivery callbacks (`rd_kafka_poll`); blocking calls
/// (flush, transactions) run on the client's own queue, never on the cooperative pool.
public final class KafkaProducer: Sendable {
    let client: KafkaClient
    private let poller: PollThread
    public let configuration: KafkaProducerConfiguration

    public init(configuration: KafkaProducerConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        client = try KafkaClient(kind: RD_KAFKA_PRODUCER, properties: configuration.librdkafkaProperties,
                                 bootstrapServers: configuration.client.bootstrapServers, logger: logger) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryCallback)
        }
        poller = PollThread(client: client)
    }

    deinit {
        poller.stop()
    }

    /// Enqueues a record without waiting; `onDelivery` runs on the poll thread when the broker
    /// acknowledges it or it fails. Throws at once when the record cannot even be enqueued
    /// (too large, unknown partition, fatal client error); a full local queue is retried by `send`.
    public func enqueue(_ message: OutgoingMessage,
                        onDelivery: @escaping @Sendable (Result<DeliveryReport, KafkaError>) -> Void = { _ in }) throws(KafkaError) {
        try enqueue(message, opaque: Unmanaged.passRetained(DeliveryBox(onDelivery)).toOpaque())
    }

    /// Enqueues with `opaque`, a retained `DeliveryReceiver` released by the delivery callback
    /// (or here, when the record cannot be enqueued).
    private func enqueue(_ message: OutgoingMessage, opaque: UnsafeMutableRawPointer) throws(KafkaError) {
        var headers: OpaquePointer?
        if !message.headers.isEmpty {
            headers = rd_kafka_headers_new(message.headers.count)
            for header in message.headers {
                _ = header.value.withUnsafeBytes { rd_kafka_header_add(headers, header.name, -1, $0.baseAddress, $0.count) }
            }
        }
        let key = message.key ?? []
        let err = message.value.withUnsafeBytes { value in
            key.withUnsafeBytes { keyBytes in
                flotilla_producev(client.handle, message.topic, message.partition ?? -1,
                                  message.key == nil ? nil : keyBytes.baseAddress, keyBytes.count,
                                  value.baseAddress, value.count, headers, opaque)
            }
        }
        if err != RD_KAFKA_RESP_ERR_NO_ERROR {
            Unmanaged<DeliveryReceiver>.fromOpaque(opaque).release()
            if let headers { rd_kafka_headers_destroy(headers) }
            throw KafkaError(err, "cannot produce to \(message.topic) (\(message.value.count) bytes)")
        }
    }

    /// Loads the metadata of `topics` into this producer's cache (see `KafkaClient.loadMetadata`);
    /// returns the partition count of each topic found.
    @discardableResult
    public func loadMetadata(for topics: [String], timeout: Duration = .seconds(5)) async -> [String: Int32] {
        await client.loadMetadata(for: topics, timeout: timeout)
    }

    /// Produces one record and waits for the broker's acknowledgement.
    @discardableResult
    public func send(_ message: OutgoingMessage) async throws(KafkaError) -> DeliveryReport {
        try await send([message])[0]
    }

    /// Produces records in order and waits for every acknowledgement; fails with the first error.
    @discardableResult
    public func send(_ messages: [OutgoingMessage]) async throws(KafkaError) -> [DeliveryReport] {
        let pending = PendingDeliveries(count: messages.count)
        for (index, message) in messages.enumerated() {
            try await enqueueRetryingWhenFull(message, to: DeliveryBox { pending.complete(index, $0) })
        }
        return try await pending.wait()
    }

    /// Produces records in order and waits until every one is acknowledged; fails with the first
    /// error. The fast path for many records (a shard's results): one shared delivery tracker for
    /// the batch and no per-record report, where `send` allocates a callback and a report each.
    public func deliver(_ messages: [OutgoingMessage]) async throws(KafkaError) {
        guard !messages.isEmpty else { return }
        let batch = BatchDelivery(count: messages.count)
        // A record that cannot be enqueued throws; those already enqueued still report to the
        // batch, which is then not waited for.
        for message in messages { try await enqueueRetryingWhenFull(message, to: batch) }
        try await batch.countdown.wait()
    }

    /// Enqueues for `receiver`, sleeping briefly while librdkafka's local queue is full (back-pressure).
    private func enqueueRetryingWhenFull(_ message: OutgoingMessage, to receiver: DeliveryReceiver) async throws(KafkaError) {
        while true {
            do {
                try enqueue(message, opaque: Unmanaged.passRetained(receiver).toOpaque())
                return
            } catch where error.code == KafkaError.queueFullCode {
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
    }

    /// Waits until every enqueued record is delivered or failed.
    public func flush(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        let client = client
        let err = await client.blocking { rd_kafka_flush(client.handle, KafkaClient.timeoutMs(timeout)) }
        try KafkaError.check(err, "flush did not finish within \(timeout)")
    }

    /// The fatal error that put this producer out of action (e.g. fenced by a newer instance).
    public var fatalError: KafkaError? { client.fatalError }
}

/// Counts a group of records' deliveries and wakes one waiter when all are in (first error kept).
final class DeliveryCountdown: Sendable {
    private struct State {
        var remaining: Int
        var firstError: KafkaError?
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state: Mutex<State>

    init(count: Int) { state = Mutex(State(remaining: count)) }

    func complete(_ error: KafkaError?) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            if let error, state.firstError == nil { state.firstError = error }
            state.remaining -= 1
            guard state.remaining == 0 else { return nil }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async throws(KafkaError) {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state in
                if state.remaining == 0 { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
        if let error = state.withLock({ $0.firstError }) { throw error }
    }
}

/// Collects the delivery reports of a group of records, in the records' order.
final class PendingDeliveries: Sendable {
    private let reports: Mutex<[DeliveryReport?]>
    private let countdown: DeliveryCountdown

    init(count: Int) {
        reports = Mutex(Array(repeating: nil, count: count))
        countdown = DeliveryCountdown(count: count)
    }

    func complete(_ index: Int, _ result: Result<DeliveryReport, KafkaError>) {
        switch result {
        case .success(let report):
            reports.withLock { $0[index] = report }
            countdown.complete(nil)
        case .failure(let error):
            countdown.complete(error)
        }
    }

    func wait() async throws(KafkaError) -> [DeliveryReport] {
        try await countdown.wait()
        return reports.withLock { $0.map { $0! } }
    }
}

/// What a delivery report goes to: the per-record context passed through librdkafka as the
/// message opaque (retained once per record, released by the callback).
class DeliveryReceiver: @unchecked Sendable {
    /// One record's outcome; `topic` is read only when needed (it costs a string).
    func delivered(_ error: KafkaError?, partition: Int32, offset: Int64, topic: () -> String) {}
}

/// One record's callback.
private final class DeliveryBox: DeliveryReceiver, @unchecked Sendable {
    let onDelivery: @Sendable (Result<DeliveryReport, KafkaError>) -> Void
    init(_ onDelivery: @escaping @Sendable (Result<DeliveryReport, KafkaError>) -> Void) { self.onDelivery = onDelivery }

    override func delivered(_ error: KafkaError?, partition: Int32, offset: Int64, topic: () -> String) {
        if let error { onDelivery(.failure(error)) } else { onDelivery(.success(DeliveryReport(topic: topic(), partition: partition, offset: offset))) }
    }
}

/// A batch of records (`deliver`): one receiver for all of them.
private final class BatchDelivery: DeliveryReceiver, @unchecked Sendable {
    let countdown: DeliveryCountdown

    init(count: Int) { countdown = DeliveryCountdown(count: count) }

    override func delivered(_ error: KafkaError?, partition: Int32, offset: Int64, topic: () -> String) {
        countdown.complete(error)
    }
}

private func deliveryCallback(_ rk: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let message, let boxPointer = message.pointee._private else { return }
    let receiver = Unmanaged<DeliveryReceiver>.fromOpaque(boxPointer).takeRetainedValue()
    let topic = { message.pointee.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? "" }
    if message.pointee.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        receiver.delivered(nil, partition: message.pointee.partition, offset: message.pointee.offset, topic: topic)
    } else {
        receiver.delivered(KafkaError(message.pointee.err, "delivery to \(topic()) failed"),
                           partition: message.pointee.partition, offset: message.pointee.offset, topic: topic)
    }
}

/// A thread that serves a producer's callbacks until stopped. It holds the client, so the
/// handle is destroyed only after the thread has left `rd_kafka_poll`.
final class PollThread: Sendable {
    private final class StopFlag: Sendable {
        let stopped = Atomic(false)
    }

    private let flag = StopFlag()

    init(client: KafkaClient) {
        let thread = Thread { [flag] in
            while !flag.stopped.load(ordering: .relaxed) {
                // Returns as soon as a callback is served, so the wait only paces an idle client's
                // wake-ups: at 50 ms a worker's two producers woke 40 times a second for nothing.
                rd_kafka_poll(client.handle, 500)
            }
        }
        thread.name = "flotilla-rdkafka-poll"
        thread.start()
    }

    func stop() { flag.stopped.store(true, ordering: .relaxed) }
}
