import Foundation

/// A record Flotilla publishes to Kafka. Encoded by `RecordCodec` as one JSON object with sorted
/// keys and a `"v": 1` version field (docs/PROTOCOL.md).
public protocol FlotillaRecord: Codable, Sendable {
    /// The `flotilla-type` header value: "job", "shard", "ack", "settle", "heartbeat", "result", "control", "dlq".
    static var recordType: String { get }
    /// The name used in error messages: "shard record".
    static var recordName: String { get }
    /// What makes a decoded record unusable (e.g. a shard id that is not `s` + digits), checked by
    /// `RecordCodec.decode`; nil when it is fine.
    var problem: String? { get }
}

extension FlotillaRecord {
    public var problem: String? { nil }
}

/// Kafka header names Flotilla sets on every record it produces. Values are UTF-8 text.
public enum RecordHeaders {
    /// The record format version, "1" (the same as the record's `v` field).
    public static let version = "flotilla-v"
    /// The record type (`FlotillaRecord.recordType`), so a reader can tell records apart without
    /// decoding them.
    public static let type = "flotilla-type"
    /// The shard attempt, on shard, ack, result and dlq records that have one.
    public static let attempt = "flotilla-attempt"
}

/// Record times: milliseconds since the Unix epoch (UTC), as JSON integers.
public enum Timestamp {
    /// The current time in epoch milliseconds.
    public static func now() -> Int64 {
        millis(Date())
    }

    /// `date` in epoch milliseconds (rounded down).
    public static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000).rounded(.down))
    }

    /// The date of `millis` epoch milliseconds.
    public static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1_000)
    }
}
