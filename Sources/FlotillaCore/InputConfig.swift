/// One input source of a job.
///
/// Encodes like the YAML: `{file, format, id}`, `{url, format, id}` or `{inline: [{id, input}]}`.
public enum InputConfig: Sendable, Hashable, Codable {
    /// A local JSON-lines or CSV file, sharded by byte ranges on line boundaries.
    case file(FileInput)
    /// An HTTP(S) resource, sharded by byte ranges read with Range requests.
    case http(HTTPInput)
    /// Samples written in the spec itself, ids already assigned.
    case inline([InlineSample])

    /// Where a file or URL input's bytes are; nil for inline samples.
    public var location: LineSource.Location? {
        switch self {
        case .file(let input): .file(path: input.path)
        case .http(let input): .url(input.url)
        case .inline: nil
        }
    }

    private enum CodingKeys: String, CodingKey { case file, url, inline, format, id }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        if let path = try container.decodeIfPresent(String.self, forKey: .file) {
            self = .file(FileInput(
                path: path,
                format: try container.decode(LineFormat.self, forKey: .format),
                idField: IDField(try container.decodeIfPresent(String.self, forKey: .id))))
        } else if let url = try container.decodeIfPresent(String.self, forKey: .url) {
            self = .http(HTTPInput(
                url: url,
                format: try container.decode(LineFormat.self, forKey: .format),
                idField: IDField(try container.decodeIfPresent(String.self, forKey: .id))))
        } else {
            self = .inline(try container.decode([InlineSample].self, forKey: .inline))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .file(let input):
            try container.encode(input.path, forKey: .file)
            try container.encode(input.format, forKey: .format)
            try container.encodeIfPresent(input.idField.explicitName, forKey: .id)
        case .http(let input):
            try container.encode(input.url, forKey: .url)
            try container.encode(input.format, forKey: .format)
            try container.encodeIfPresent(input.idField.explicitName, forKey: .id)
        case .inline(let samples):
            try container.encode(samples, forKey: .inline)
        }
    }
}

/// A local line-oriented file.
public struct FileInput: Sendable, Hashable {
    /// Absolute path (relative paths in the spec resolve against the spec's folder). Existence is
    /// checked when the input is sharded, not when the spec is loaded.
    public var path: String
    /// Default from the extension: `.jsonl`, `.ndjson`, `.json` → jsonl; `.csv` → csv.
    public var format: LineFormat
    /// The field (JSON lines) or column (CSV) holding the sample id; a line without it gets the
    /// id `<file>:<line>`.
    public var idField: IDField

    public init(path: String, format: LineFormat, idField: IDField = .standard) {
        self.path = path
        self.format = format
        self.idField = idField
    }
}

/// An HTTP(S) line-oriented resource.
public struct HTTPInput: Sendable, Hashable {
    /// An `http://` or `https://` URL.
    public var url: String
    /// Default from the URL path's extension, as for files.
    public var format: LineFormat
    /// As `FileInput.idField`; a line without it gets the id `<url>:<line>`.
    public var idField: IDField

    public init(url: String, format: LineFormat, idField: IDField = .standard) {
        self.url = url
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
