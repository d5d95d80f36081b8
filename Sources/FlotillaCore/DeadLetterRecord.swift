import Foundation

/// A record on `<p>.<job>.dlq`, keyed by shard id when known: a shard that failed
/// `faults.maxAttempts` times, or a record that could not be decoded. Nothing is dropped silently.
public struct DeadLetterRecord: FlotillaRecord, Hashable {
    public static let recordType = "dlq"
    public static let recordName = "dead letter record"

    public var job: String
    public var shard: String?
    public var attempt: Int?
    /// Why it is here, e.g. "failed 3 attempts: predictor exited with status 1" or
    /// "shard record: not JSON: ...".
    public var reason: String
    /// The offending record's value as UTF-8 text, when it is valid UTF-8.
    public var raw: String?
    /// The offending record's value in base64, when it is not valid UTF-8.
    public var rawBase64: String?
    /// Where the offending record was read, when it came from Kafka.
    public var topic: String?
    public var partition: Int?
    public var offset: Int64?
    /// Who wrote it: a worker id or "controller".
    public var from: String
    /// When it was written (epoch ms).
    public var time: Int64

    public init(
        job: String, shard: String? = nil, attempt: Int? = nil, reason: String, raw: [UInt8]? = nil,
        topic: String? = nil, partition: Int? = nil, offset: Int64? = nil, from: String,
        time: Int64 = Timestamp.now()
    ) {
        self.job = job
        self.shard = shard
        self.attempt = attempt
        self.reason = reason
        if let raw {
            if let text = String(validating: raw, as: UTF8.self) {
                self.raw = text
            } else {
                self.rawBase64 = Data(raw).base64EncodedString()
            }
        }
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.from = from
        self.time = time
    }

    /// The offending record's bytes, from `raw` or `rawBase64`.
    public var rawBytes: [UInt8]? {
        if let raw { return Array(raw.utf8) }
        if let rawBase64, let data = Data(base64Encoded: rawBase64) { return Array(data) }
        return nil
    }
}
