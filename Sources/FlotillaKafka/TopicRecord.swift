import FlotillaCore
import RdKafka

/// A record read from a topic, with where it sits and what its headers say.
public struct TopicRecord: Sendable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The key as text (Flotilla's keys are ids), nil for a record without one.
    public var key: String?
    public var value: [UInt8]
    /// When the producer wrote it (epoch ms), if the broker says.
    public var timestamp: Int64?
    /// The `flotilla-type` header: which record this is, without decoding it.
    public var recordType: String?
    /// The `flotilla-attempt` header, on shard, ack, result and dlq records that have one.
    public var attempt: Int?

    init(_ message: KafkaMessage) {
        topic = message.topic
        partition = message.partition
        offset = message.offset
        key = message.keyString
        value = message.value
        timestamp = message.timestamp
        recordType = message.header(RecordHeaders.type).map { String(decoding: $0, as: UTF8.self) }
        attempt = message.header(RecordHeaders.attempt).flatMap { Int(String(decoding: $0, as: UTF8.self)) }
    }

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
    public var position: TopicPartitionOffset { TopicPartitionOffset(topic, partition, offset) }

    /// Whether this is an acks-topic record that is not an ack: a `SettleRecord`, which readers skip.
    public var isSettle: Bool { recordType == SettleRecord.recordType }

    /// The value as a `T`; a record whose header names another type is an error, not a guess.
    public func decode<T: FlotillaRecord>(_ type: T.Type) throws(FlotillaError) -> T {
        if let recordType, recordType != T.recordType {
            throw FlotillaError(.codec, "\(T.recordName): the record is a '\(recordType)' record")
        }
        return try RecordCodec.shared.decode(T.self, from: value)
    }

    /// The value as a `T`, or nil when the record is of another type (by its header) or
    /// undecodable; `problems` counts the undecodable ones.
    public func decode<T: FlotillaRecord>(_ type: T.Type, problems: inout Int) -> T? {
        if let recordType, recordType != T.recordType { return nil }
        do {
            return try RecordCodec.shared.decode(T.self, from: value)
        } catch {
            problems += 1
            return nil
        }
    }

    /// The per-sample results in a record of the results topic (a batch or a single result);
    /// empty when undecodable, which `problems` counts.
    public func decodeResults(problems: inout Int) -> [ResultRecord] {
        do {
            return try RecordCodec.shared.decodeResults(from: value, type: recordType)
        } catch {
            problems += 1
            return []
        }
    }
}

/// What a reader of topics sees: a record, or that a partition was read to its end (the offset
/// after its last record then; for a committed reader, the last stable offset).
public enum TopicEvent: Sendable {
    case record(TopicRecord)
    case end(TopicPartition, offset: Int64)

    /// The record, for a `.record` event.
    public var record: TopicRecord? {
        if case .record(let record) = self { record } else { nil }
    }
}
