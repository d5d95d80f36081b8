/// A record read often enough that `JSONDecoder` shows: shard and ack records, which every worker
/// and the controller read once per shard (`tools/bench/scale`: decoding was ~8 % of a worker's
/// CPU on 10-sample shards). Read from a ``JSONValue`` tree that ``JSONScanner`` builds instead.
///
/// The tree path reads only the shape this build writes. Anything else (a missing field, a number
/// where a string belongs, an unknown enum value, an optional list) makes it return nil, and the
/// record goes through `JSONDecoder`, whose rules and messages stay the reference.
public protocol TreeDecodedRecord: FlotillaRecord {
    /// The record from an object's members (`"v"` already checked), or nil to leave it to `Codable`.
    init?(members: [String: JSONValue])
}

extension RecordCodec {
    /// The record read from its tree, or nil when the tree path does not cover it.
    static func treeDecoded<T: TreeDecodedRecord>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        let tree: JSONValue? = bytes.withUnsafeBufferPointer { buffer in
            guard UTF8Validation.isValid(buffer) else { return nil }
            var scanner = JSONScanner(buffer)
            guard let value = scanner.value(), scanner.expectEnd() else { return nil }
            return value
        }
        guard case .object(let members)? = tree, members["v"] == .int(Int64(version)),
              let record = T(members: members), record.problem == nil else { return nil }
        return record
    }
}

extension [String: JSONValue] {
    func string(_ key: String) -> String? {
        if case .string(let value)? = self[key] { value } else { nil }
    }

    func int64(_ key: String) -> Int64? {
        if case .int(let value)? = self[key] { value } else { nil }
    }

    func int(_ key: String) -> Int? { int64(key).map(Int.init) }

    /// A field that may be absent or null: `.some(nil)` then; nil when it has another type.
    func optionalString(_ key: String) -> String?? {
        switch self[key] {
        case nil, .null?: .some(nil)
        case .string(let value)?: .some(value)
        default: nil
        }
    }

    /// Whether `key` is absent or null.
    func isAbsent(_ key: String) -> Bool {
        switch self[key] {
        case nil, .null?: true
        default: false
        }
    }
}

extension AckRecord: TreeDecodedRecord {
    public init?(members: [String: JSONValue]) {
        // Acks with error counts are rare (error samples): those go through Codable.
        guard let job = members.string("job"), let shard = members.string("shard"), let attempt = members.int("attempt"),
              let run = members.string("run"), let worker = members.string("worker"), let samples = members.int("samples"),
              let errorSamples = members.int("errorSamples"), let status = members.string("status").flatMap(AckStatus.init(rawValue:)),
              let error = members.optionalString("error"), members.isAbsent("errors"),
              let startedAt = members.int64("startedAt"), let finishedAt = members.int64("finishedAt") else { return nil }
        self.init(job: job, shard: shard, attempt: attempt, run: run, worker: worker, samples: samples, errorSamples: errorSamples,
                  status: status, error: error, startedAt: startedAt, finishedAt: finishedAt)
    }
}

extension ShardRecord: TreeDecodedRecord {
    public init?(members: [String: JSONValue]) {
        guard let job = members.string("job"), let shard = members.string("shard"), let attempt = members.int("attempt"),
              case .object(let source)? = members["source"], let lines = LineSource(members: source),
              let reason = members.string("reason"), let createdAt = members.int64("createdAt") else { return nil }
        let samples: Int?
        switch members["samples"] {
        case nil, .null?: samples = nil
        case .int(let count)?: samples = Int(count)
        default: return nil
        }
        self.init(job: job, shard: shard, attempt: attempt, source: .lines(lines), samples: samples,
                  reason: ShardReason(reason), createdAt: createdAt)
    }
}

extension LineSource {
    /// A file or HTTP range (inline sources, with their samples, go through Codable).
    init?(members: [String: JSONValue]) {
        let location: Location
        switch members.string("kind") {
        case "file"?:
            guard let path = members.string("path") else { return nil }
            location = .file(path: path)
        case "http"?:
            guard let url = members.string("url") else { return nil }
            location = .url(url)
        default: return nil
        }
        guard let offset = members.int64("offset"), let length = members.int64("length"), let firstLine = members.int64("firstLine"),
              let format = members.string("format").flatMap(LineFormat.init(rawValue:)),
              let header = members.optionalString("header"), let idField = members.optionalString("idField"),
              let checksum = members.optionalString("checksum") else { return nil }
        self.init(location: location, range: ByteRange(offset: offset, length: length, firstLine: firstLine, format: format,
                                                        header: header, idField: idField, checksum: checksum))
    }
}
