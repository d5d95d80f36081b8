/// A byte range of a line-oriented input, a local file or an HTTP(S) resource: what a file or URL
/// input is cut into at submit and what a worker reads back.
///
/// One type for both kinds of input: only where the bytes are fetched from differs, so sharding,
/// boundary checks, checksums and parsing are shared. Encoded inside `ShardSource`.
public struct LineSource: Sendable, Hashable {
    /// Where the input's bytes are.
    public enum Location: Sendable, Hashable, CustomStringConvertible {
        /// A local file, read with `pread`.
        case file(path: String)
        /// An `http://` or `https://` resource, read with `Range` requests.
        case url(String)

        /// The path or URL exactly as given at submit: the `<source>` of `<source>:<line>` sample
        /// ids and of messages.
        public var name: String {
            switch self {
            case .file(let path): path
            case .url(let url): url
            }
        }

        /// Whether this is a local file.
        public var isFile: Bool {
            if case .file = self { true } else { false }
        }

        /// "file /data/x.jsonl" or "url http://host/x.csv".
        public var description: String {
            switch self {
            case .file(let path): "file \(path)"
            case .url(let url): "url \(url)"
            }
        }
    }

    public var location: Location
    public var range: ByteRange

    public init(location: Location, range: ByteRange) {
        self.location = location
        self.range = range
    }
}
