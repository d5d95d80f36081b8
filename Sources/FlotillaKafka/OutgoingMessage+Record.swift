import FlotillaCore
import RdKafka

extension OutgoingMessage {
    /// A Flotilla record as a Kafka message: its JSON value, its key, and the `flotilla-v`,
    /// `flotilla-type` (and, when given, `flotilla-attempt`) headers of docs/PROTOCOL.md.
    public static func record<T: FlotillaRecord>(_ record: T, topic: String, key: String, partition: Int32? = nil,
                                                 attempt: Int? = nil) -> OutgoingMessage {
        OutgoingMessage(topic: topic, partition: partition, key: key, value: RecordCodec.shared.encode(record),
                        headers: headers(for: T.self, attempt: attempt))
    }

    /// The `flotilla-v`, `flotilla-type` (and `flotilla-attempt`) headers of a record type.
    public static func headers<T: FlotillaRecord>(for type: T.Type, attempt: Int? = nil) -> [KafkaHeader] {
        var headers = [KafkaHeader(RecordHeaders.version, String(RecordCodec.version)), KafkaHeader(RecordHeaders.type, T.recordType)]
        if let attempt { headers.append(KafkaHeader(RecordHeaders.attempt, String(attempt))) }
        return headers
    }
}

extension KafkaMessage {
    /// The value of the `flotilla-type` header, if any.
    public var recordType: String? {
        header(RecordHeaders.type).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Whether this is an acks-topic record that is not an ack: a `SettleRecord`, which readers skip.
    public var isSettle: Bool { recordType == SettleRecord.recordType }
}
