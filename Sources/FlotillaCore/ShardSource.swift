/// Where a shard's samples come from. Carried inside every shard record.
///
/// Encoded flat, with `kind` naming the case: `{"kind":"file","path":…,<ByteRange fields>}`,
/// `{"kind":"http","url":…,<ByteRange fields>}` or `{"kind":"inline","samples":[…]}`.
public enum ShardSource: Sendable, Hashable, Codable {
    /// A byte range of a local file or an HTTP(S) resource, starting and ending on line boundaries.
    case lines(LineSource)
    /// Samples embedded in the shard record itself (pipelines publishing input partitions directly).
    case inline([InlineSample])

    private enum CodingKeys: String, CodingKey { case kind, path, url, samples }
    private enum Kind: String, Codable { case file, http, inline }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(Kind.self, forKey: .kind) {
        case .file:
            let path = try container.decode(String.self, forKey: .path)
            self = .lines(LineSource(location: .file(path: path), range: try ByteRange(from: decoder)))
        case .http:
            let url = try container.decode(String.self, forKey: .url)
            self = .lines(LineSource(location: .url(url), range: try ByteRange(from: decoder)))
        case .inline:
            self = .inline(try container.decode([InlineSample].self, forKey: .samples))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .lines(let source):
            switch source.location {
            case .file(let path):
                try container.encode(Kind.file, forKey: .kind)
                try container.encode(path, forKey: .path)
            case .url(let url):
                try container.encode(Kind.http, forKey: .kind)
                try container.encode(url, forKey: .url)
            }
            try source.range.encode(to: encoder)
        case .inline(let samples):
            try container.encode(Kind.inline, forKey: .kind)
            try container.encode(samples, forKey: .samples)
        }
    }
}

/// The format of a line-oriented input.
public enum LineFormat: String, Sendable, Hashable, Codable {
    /// One JSON value per line.
    case jsonl
    /// Comma-separated values with a header line; each row becomes an object keyed by the header.
    case csv
}

/// Fields shared by byte-range sources. Encoded flat into the source object.
public struct ByteRange: Sendable, Hashable, Codable {
    /// First byte of the range (on a row start; after a leading UTF-8 byte order mark).
    public var offset: Int64
    /// Number of bytes (the range ends just after a row's newline, or at end of file).
    public var length: Int64
    /// 1-based line number of the range's first line in the whole input, for `<file>:<line>` ids
    /// (physical lines: a CSV row whose quoted field spans lines counts each of them).
    public var firstLine: Int64
    public var format: LineFormat
    /// The CSV header line, carried into every shard (nil for JSON lines).
    public var header: String?
    /// The field or column holding the sample id; nil means `<file>:<line>`.
    public var idField: String?
    /// Checksum of the range's bytes at submit, `xxh64:<16 hex digits>`; the reader refuses a
    /// range whose bytes no longer match. Nil in records written before checksums existed.
    public var checksum: String?

    public init(
        offset: Int64, length: Int64, firstLine: Int64, format: LineFormat, header: String? = nil, idField: String? = nil,
        checksum: String? = nil
    ) {
        self.offset = offset
        self.length = length
        self.firstLine = firstLine
        self.format = format
        self.header = header
        self.idField = idField
        self.checksum = checksum
    }
}

/// A sample embedded in a shard record.
public struct InlineSample: Sendable, Hashable, Codable {
    public var id: String
    public var input: JSONValue

    public init(id: String, input: JSONValue) {
        self.id = id
        self.input = input
    }
}
