/// One input source of a job.
///
/// Encodes like the YAML: `{file, format, id}`, `{url, format, id}` or `{inline: [{id, input}]}`.
public enum InputConfig: Sendable, Hashable, Codable {
    /// A JSON-lines or CSV file or HTTP(S) resource, sharded by byte ranges on line boundaries.
    case lines(LinesInput)
    /// Samples written in the spec itself, ids already assigned.
    case inline([InlineSample])

    /// Where a file or URL input's bytes are; nil for inline samples.
    public var location: LineSource.Location? {
        if case .lines(let input) = self { input.location } else { nil }
    }

    private enum CodingKeys: String, CodingKey { case file, url, inline, format, id }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let location: LineSource.Location
        if let path = try container.decodeIfPresent(String.self, forKey: .file) {
            location = .file(path: path)
        } else if let url = try container.decodeIfPresent(String.self, forKey: .url) {
            location = .url(url)
        } else {
            self = .inline(try container.decode([InlineSample].self, forKey: .inline))
            return
        }
        self = .lines(LinesInput(location, format: try container.decode(LineFormat.self, forKey: .format),
                                 idField: IDField(try container.decodeIfPresent(String.self, forKey: .id))))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .lines(let input):
            switch input.location {
            case .file(let path): try container.encode(path, forKey: .file)
            case .url(let url): try container.encode(url, forKey: .url)
            }
            try container.encode(input.format, forKey: .format)
            try container.encodeIfPresent(input.idField.explicitName, forKey: .id)
        case .inline(let samples):
            try container.encode(samples, forKey: .inline)
        }
    }
}

/// A line-oriented input: a local file or an HTTP(S) resource (one type, as `LineSource`: only
/// where the bytes come from differs).
public struct LinesInput: Sendable, Hashable {
    /// A local file (an absolute path: relative paths in the spec resolve against the spec's
    /// folder; existence is checked when the input is sharded, not when the spec is loaded) or an
    /// `http://` or `https://` URL.
    public var location: LineSource.Location
    /// Default from the extension of the file or the URL's path: `.jsonl`, `.ndjson`, `.json` →
    /// jsonl; `.csv` → csv.
    public var format: LineFormat
    /// The field (JSON lines) or column (CSV) holding the sample id; a line without it gets the
    /// id `<file or url>:<line>`.
    public var idField: IDField

    public init(_ location: LineSource.Location, format: LineFormat, idField: IDField = .standard) {
        self.location = location
        self.format = format
        self.idField = idField
    }
}

/// The field (JSON lines) or column (CSV) holding sample ids: named in the spec, or the default.
///
/// The difference matters for CSV only: a header without a column the spec names is an error at
/// submit, while a header without the default `id` column gives every row a `<file>:<line>` id.
public enum IDField: Sendable, Hashable, ExpressibleByStringLiteral {
    /// Set by the spec's `id:`; the CSV header must have this column.
    case named(String)
    /// No `id:` in the spec: the field or column `id` when present, else `<file>:<line>` ids.
    case standard

    /// The field name looked for: the named one, or `id`.
    public var name: String {
        switch self {
        case .named(let name): name
        case .standard: "id"
        }
    }

    /// The name the spec gave, nil for the default.
    public var explicitName: String? {
        if case .named(let name) = self { name } else { nil }
    }

    /// `.named(name)`, or `.standard` for nil.
    public init(_ name: String?) {
        self = name.map(IDField.named) ?? .standard
    }

    public init(stringLiteral name: String) { self = .named(name) }
}
