#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore

/// Cuts a line-oriented input into shards of `samplesPerShard` samples, fed in chunks of bytes.
///
/// It never parses a line: it finds newlines with `memchr` and looks only at the leading bytes of
/// each line to tell blank lines (ASCII spaces, tabs and carriage returns only) from samples.
/// Blank lines are never samples, here and in ``SampleParser``, so both count lines the same way.
/// A shard's range starts at its first sample line and ends just after its last sample's newline
/// (or at end of input), so blank lines between shards belong to no range.
/// Shared by ``FileSharder`` (chunks from `read(2)`) and ``HTTPSharder`` (chunks from the network).
struct LineCutter {
    /// Where the input came from, as the user gave it, for error messages.
    let source: String
    let format: LineFormat
    let idField: String?
    let samplesPerShard: Int
    let maxSampleBytes: Int

    /// Bytes consumed so far: the absolute offset of the next chunk's first byte.
    private(set) var consumed: Int64 = 0
    /// 1-based number of the line being scanned.
    private var lineNumber: Int64 = 1
    /// Absolute offset of the line being scanned.
    private var lineStart: Int64 = 0
    /// Bytes of the current line seen so far, newline excluded.
    private var lineLength = 0
    private var lineHasContent = false
    private var lastByteWasCR = false

    /// The CSV header's bytes while it is being read (bounded by `maxSampleBytes`).
    private var headerBytes: [UInt8] = []
    /// The CSV header line's text once read (nil for JSON lines).
    private(set) var header: String?
    private var headerDone: Bool

    private var shardStart: Int64 = 0
    private var shardFirstLine: Int64 = 1
    private var shardSamples = 0
    /// Samples seen so far.
    private(set) var samples: Int64 = 0
    private(set) var ranges: [ByteRange] = []
    private(set) var sampleCounts: [Int] = []

    init(source: String, format: LineFormat, idField: String?, samplesPerShard: Int, maxSampleBytes: Int) throws(FlotillaError) {
        guard samplesPerShard > 0 else {
            throw FlotillaError(.invalidConfiguration, "samples per shard must be > 0, got \(samplesPerShard)")
        }
        guard maxSampleBytes > 0 else {
            throw FlotillaError(.invalidConfiguration, "max sample bytes must be > 0, got \(maxSampleBytes)")
        }
        self.source = source
        self.format = format
        self.idField = idField
        self.samplesPerShard = samplesPerShard
        self.maxSampleBytes = maxSampleBytes
        self.headerDone = format != .csv
    }

    /// Scans one chunk; chunks must be given in input order.
    mutating func consume(_ chunk: UnsafeRawBufferPointer) throws(FlotillaError) {
        guard let base = chunk.baseAddress, chunk.count > 0 else { return }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        let count = chunk.count
        var position = 0
        while position < count {
            let found = memchr(bytes + position, 0x0A, count - position)
            let end = found.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) - bytes } ?? count
            let segment = end - position
            if segment > 0 {
                if !lineHasContent {
                    // Usually one byte: a sample line starts with a non-blank byte.
                    var index = position
                    while index < end, Self.isBlankByte(bytes[index]) { index += 1 }
                    lineHasContent = index < end
                }
                lineLength += segment
                lastByteWasCR = bytes[end - 1] == 0x0D
                // +1 allows a carriage return before the newline; the exact check is at line end.
                if lineLength > maxSampleBytes + 1 { throw overlong() }
                if !headerDone {
                    headerBytes.append(contentsOf: UnsafeBufferPointer(start: bytes + position, count: segment))
                }
            }
            guard found != nil else { break }
            try endLine(at: consumed + Int64(end) + 1)
            position = end + 1
        }
        consumed += Int64(count)
    }

    /// Ends the input: takes a last line without a trailing newline and the last partial shard.
    /// Throws when the input is empty or holds no sample.
    mutating func finish() throws(FlotillaError) -> [ByteRange] {
        if consumed == 0 {
            throw FlotillaError(.invalidInput, "input \(source) is empty")
        }
        if lineStart < consumed { try endLine(at: consumed) }
        if shardSamples > 0 { cut(at: lastSampleEnd) }
        if samples == 0 {
            switch format {
            case .csv where header != nil:
                throw FlotillaError(.invalidInput, "input \(source) has a CSV header but no rows")
            default:
                throw FlotillaError(.invalidInput, "input \(source) has no samples (only blank lines)")
            }
        }
        return ranges
    }

    private var lastSampleEnd: Int64 = 0

    private mutating func endLine(at end: Int64) throws(FlotillaError) {
        let length = lineLength - (lastByteWasCR ? 1 : 0)
        if length > maxSampleBytes { throw overlong() }
        if lineHasContent {
            if !headerDone {
                try takeHeader()
            } else {
                if shardSamples == 0 {
                    shardStart = lineStart
                    shardFirstLine = lineNumber
                }
                shardSamples += 1
                samples += 1
                lastSampleEnd = end
                if shardSamples == samplesPerShard { cut(at: end) }
            }
        }
        lineNumber += 1
        lineStart = end
        lineLength = 0
        lineHasContent = false
        lastByteWasCR = false
        if !headerDone { headerBytes.removeAll(keepingCapacity: true) }
    }

    private mutating func cut(at end: Int64) {
        ranges.append(ByteRange(
            offset: shardStart, length: end - shardStart, firstLine: shardFirstLine,
            format: format, header: header, idField: idField
        ))
        sampleCounts.append(shardSamples)
        shardSamples = 0
    }

    private mutating func takeHeader() throws(FlotillaError) {
        var bytes = headerBytes
        headerBytes = []
        headerDone = true
        if bytes.last == 0x0D { bytes.removeLast() }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw FlotillaError(.invalidInput, "input \(source): CSV header (line \(lineNumber)) is not valid UTF-8")
        }
        let columns: [String]
        switch CSVRow.split(text) {
        case .success(let fields): columns = fields
        case .failure(let error):
            throw FlotillaError(.invalidInput, "input \(source): CSV header (line \(lineNumber)): \(error.message)")
        }
        var seen = Set<String>()
        for column in columns where !seen.insert(column).inserted {
            throw FlotillaError(.invalidInput, "input \(source): CSV header has the column '\(column)' twice")
        }
        if let idField, !seen.contains(idField) {
            throw FlotillaError(
                .invalidConfiguration,
                "id column '\(idField)' is not in the CSV header of \(source) (columns: \(columns.joined(separator: ", ")))"
            )
        }
        header = text
    }

    private func overlong() -> FlotillaError {
        FlotillaError(
            .invalidInput,
            "input \(source) line \(lineNumber) is longer than the \(maxSampleBytes)-byte sample limit"
        )
    }

    /// Space, tab or carriage return: the bytes a blank line may hold.
    @inline(__always)
    static func isBlankByte(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D
    }
}
