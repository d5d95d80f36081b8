import FlotillaCore
import Logging

/// Reads one shard's samples back: a byte range of a file or an HTTP(S) resource, or inline samples.
///
/// A shard is at most a few thousand samples, so it is returned as one array: memory is bounded
/// by the shard size, which the sharders bound. File reads run on a Dispatch queue, off the
/// cooperative pool; parsing runs in the caller's task.
///
/// What throws is a source that cannot be read as sharded: a missing or unreadable file, an HTTP
/// error ("GET http://h/x.jsonl: HTTP 404 Not Found"), or an input that changed since submit:
/// the range runs past the end, no longer starts or ends on a line boundary, or its bytes no
/// longer match the checksum recorded at submit ("input changed since submit: data.csv bytes
/// 120..4567 (checksum xxh64:… at submit, xxh64:… now)"). Both are checked before parsing.
///
/// Per-sample problems never throw; they become samples whose input is `.failure`:
/// - **Blank lines** (only spaces, tabs, carriage returns) are not samples and are skipped, as the
///   sharders skip them when counting; line numbers still count them.
/// - **Invalid UTF-8, malformed JSON, a ragged or badly quoted CSV row**: an error sample with a
///   message starting `line N:` ("line 17: invalid UTF-8",
///   "line 3: row has 2 fields, the header has 3").
/// - **Ids**: the `idField` value when present — a JSON string or integer (written in decimal), or
///   a non-empty CSV cell; a JSON id that is null or absent, or an empty CSV cell, falls back to
///   `<source>:<line>`, where `<source>` is the file path or URL exactly as given to the sharder.
///   A JSON id of another type (bool, fraction, array, object) is an error sample with the
///   fallback id.
/// - **Duplicate ids within a shard**: the first occurrence is read normally; each later one
///   becomes an error sample "duplicate sample id 'x' (first at data.jsonl:3)" whose id is its own
///   `<source>:<line>`, so ids stay unique within a shard's results and the error cannot be taken
///   for the first sample's result. Duplicates in different shards are not detected.
/// - **CSV** rows become objects keyed by the header's columns; values stay strings (no number
///   guessing). Quoted fields follow RFC 4180 (commas and newlines inside quotes, `""` for a
///   quote); a row spanning lines is numbered by its first line. A quote left open at the end of
///   the input is an error sample: "line 7: unterminated quoted field 2: no closing quote …".
/// - **Byte order mark**: a leading UTF-8 BOM is skipped (the sharders start ranges after it).
/// - **Inline** shards follow the same duplicate rule, with `inline:<position>` (1-based) standing
///   for `<source>:<line>`.
///
/// A JSON line is validated by ``JSONScanner`` in one pass that builds no tree (the id field is
/// read on the way) and travels on as its own bytes (``JSONBytes``).
public struct ShardReader: Sendable {
    public var logger: Logger
    public var http: HTTPOptions
    /// Rows longer than this become error samples (`shard.maxSampleBytes`); nil: no limit.
    public var maxSampleBytes: Int?

    public init(logger: Logger, http: HTTPOptions = HTTPOptions(), maxSampleBytes: Int? = nil) {
        self.logger = logger
        self.http = http
        self.maxSampleBytes = maxSampleBytes
    }

    /// Every sample of `source`, checked against the count planned at submit when there is one:
    /// an input edited since (same bytes, other rules, or a hand-made record) fails the shard
    /// rather than acking a wrong number of samples.
    public func read(_ source: ShardSource, planned: Int?) async throws(FlotillaError) -> [Sample] {
        let samples = try await read(source, expected: planned)
        if let planned, planned != samples.count {
            throw FlotillaError(.invalidInput, "input changed since submit: planned \(planned) samples, read \(samples.count)")
        }
        return samples
    }

    /// Every sample of `source`, in input order; `expected` sizes the arrays (a guess from the
    /// bytes otherwise: lines of 64 bytes, seven times too many for a fast model's 480-byte lines,
    /// and the oversized buffers cost page faults on every shard).
    public func read(_ source: ShardSource, expected: Int? = nil) async throws(FlotillaError) -> [Sample] {
        switch source {
        case .lines(let lines):
            let name = lines.location.name
            let range = lines.range
            try Self.validate(range, source: name)
            let bytes: [UInt8]
            switch lines.location {
            case .file(let path):
                bytes = try await Blocking.run { () throws(FlotillaError) in try Self.readBytes(path: path, range) }
            case .url(let url):
                bytes = try await fetch(url: url, range)
            }
            try Self.verify(bytes, range, source: name)
            return try SampleParser.parse(bytes, source: name, range: range, maxSampleBytes: maxSampleBytes, expected: expected)
        case .inline(let inline):
            var ids = DuplicateIDs(source: "inline")
            return inline.enumerated().map { position, sample in
                ids.check(Sample(id: sample.id, value: sample.input), line: Int64(position + 1))
            }
        }
    }

    private static func validate(_ range: ByteRange, source: String) throws(FlotillaError) {
        guard range.offset >= 0, range.length > 0, range.firstLine >= 1 else {
            throw FlotillaError(
                .invalidInput,
                "shard of \(source) has an invalid range (offset \(range.offset), length \(range.length), first line \(range.firstLine))"
            )
        }
    }

    private static func changed(_ source: String, _ range: ByteRange, _ detail: String) -> FlotillaError {
        FlotillaError(
            .invalidInput,
            "input changed since submit: \(source) bytes \(range.offset)..\(range.offset + range.length) (\(detail))"
        )
    }

    /// The range's bytes against the checksum recorded at submit (records without one pass).
    static func verify(_ bytes: [UInt8], _ range: ByteRange, source: String) throws(FlotillaError) {
        guard let expected = range.checksum else { return }
        let actual = bytes.withUnsafeBytes { XXH64.checksum($0) }
        guard actual == expected else {
            throw changed(source, range, "checksum \(expected) at submit, \(actual) now")
        }
    }

    /// Where the bytes checked by ``checkStart(_:lead:source:)`` begin: one byte before the range,
    /// or byte 0 for a range at 3, which may follow a byte order mark.
    private static func leadStart(_ range: ByteRange) -> Int64 {
        range.offset == 3 ? 0 : max(0, range.offset - 1)
    }

    /// Checks that the range still starts a row: at 0, after a newline (the last `lead` byte), or
    /// right after a leading byte order mark. `lead` holds the bytes from ``leadStart(_:)``.
    private static func checkStart(_ range: ByteRange, lead: some BidirectionalCollection<UInt8>, source: String) throws(FlotillaError) {
        let offset = range.offset
        guard offset == 0 || lead.last == 0x0A || (offset == 3 && lead.elementsEqual([0xEF, 0xBB, 0xBF])) else {
            throw changed(source, range, "byte \(offset) no longer starts a line")
        }
    }

    /// Checks that the range's `bytes` still end a row: on a newline, or at the input's end
    /// (`total` bytes; nil when unknown).
    private static func checkEnd(_ bytes: [UInt8], _ range: ByteRange, total: Int64?, source: String) throws(FlotillaError) {
        let end = range.offset + range.length
        if bytes.last != 0x0A, let total, end < total {
            throw changed(source, range, "byte \(end) no longer ends a line")
        }
    }

    /// The range's bytes, after checking that it still lies on line boundaries inside the file.
    private static func readBytes(path: String, _ range: ByteRange) throws(FlotillaError) -> [UInt8] {
        let input = try InputFile(path: path)
        let end = range.offset + range.length
        guard end <= input.size else {
            throw changed(path, range, "the shard ends at byte \(end) but the file now has \(input.size) bytes")
        }
        var lead: [UInt8] = []
        for position in leadStart(range)..<range.offset { lead.append(try input.byte(at: position)) }
        try checkStart(range, lead: lead, source: path)
        let bytes = try [UInt8](unsafeUninitializedCapacity: Int(range.length)) { (buffer, count) throws(FlotillaError) in
            try input.readExactly(into: UnsafeMutableRawBufferPointer(buffer), at: range.offset)
            count = Int(range.length)
        }
        try checkEnd(bytes, range, total: input.size, source: path)
        return bytes
    }

    /// Fetches the range with `Range: bytes=a-b`, from ``leadStart(_:)`` to check the line boundary.
    /// A server that answers 200 with the whole body is read up to the range's end, the rest dropped.
    private func fetch(url: String, _ range: ByteRange) async throws(FlotillaError) -> [UInt8] {
        let first = Self.leadStart(range)
        let last = range.offset + range.length - 1
        let wanted = Int(last - first + 1)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(wanted)
        var position: Int64 = 0  // offset of the next body byte, when the server sends the whole body
        var whole = false
        var total: Int64?
        let logger = logger
        try await HTTPClient(options: http).get(url, range: first...last, onResponse: { head throws(FlotillaError) in
            switch head.status {
            case 206:
                // "bytes a-b/total": check that the server sends the range we asked for.
                guard let contentRange = head.contentRange, contentRange.hasPrefix("bytes \(first)-") else {
                    throw FlotillaError(.invalidInput, "GET \(url): answered range '\(head.contentRange ?? "none")' for bytes=\(first)-\(last)")
                }
                total = contentRange.split(separator: "/").last.flatMap { Int64($0) }
            case 416:
                throw Self.changed(url, range, "the server says bytes \(first)-\(last) are past its end")
            default:
                whole = true
                total = head.contentLength
                RangeFallback.warnOnce(url: url, logger: logger)
            }
        }, onData: { chunk throws(FlotillaError) in
            if !whole {
                bytes.append(contentsOf: chunk.prefix(wanted - bytes.count))
                return bytes.count < wanted
            }
            let chunkStart = position
            position += Int64(chunk.count)
            let from = max(first, chunkStart)
            let to = min(last + 1, position)
            if from < to {
                bytes.append(contentsOf: chunk[Int(from - chunkStart)..<Int(to - chunkStart)])
            }
            return position <= last
        })
        guard bytes.count == wanted else {
            throw Self.changed(url, range, "the shard ends at byte \(last + 1) but the body ended at byte \(first + Int64(bytes.count))")
        }
        let lead = Int(range.offset - first)
        try Self.checkStart(range, lead: bytes[0..<lead], source: url)
        bytes.removeFirst(lead)
        try Self.checkEnd(bytes, range, total: total, source: url)
        return bytes
    }
}
