import FlotillaCore
import RdKafka

/// A Flotilla record ready to publish: its JSON value, its key, and the `flotilla-v`,
/// `flotilla-type` (and, when given, `flotilla-attempt`) headers of docs/PROTOCOL.md.
public struct OutgoingRecord: Sendable {
    let message: OutgoingMessage

    /// - Parameter partition: nil lets the producer pick by the key's hash.
    public init<T: FlotillaRecord>(_ record: T, topic: String, key: String, partition: Int32? = nil, attempt: Int? = nil) {
        message = OutgoingMessage(topic: topic, partition: partition, key: key, value: RecordCodec.shared.encode(record),
                                  headers: Self.headers(for: T.self, attempt: attempt))
    }

    public var topic: String { message.topic }

    /// The `flotilla-v`, `flotilla-type` (and `flotilla-attempt`) headers of a record type.
    static func headers<T: FlotillaRecord>(for type: T.Type, attempt: Int? = nil) -> [KafkaHeader] {
        var headers = [KafkaHeader(RecordHeaders.version, String(RecordCodec.version)), KafkaHeader(RecordHeaders.type, T.recordType)]
        if let attempt { headers.append(KafkaHeader(RecordHeaders.attempt, String(attempt))) }
        return headers
    }
}

/// Where the broker put a published record.
public struct Delivery: Sendable, Hashable {
    public var partition: Int32
    public var offset: Int64
}
