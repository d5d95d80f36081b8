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
/// It never parses a row: it finds newlines with `memchr` and looks only at the leading bytes of
/// each row to tell blank lines (ASCII spaces, tabs and carriage returns only) from samples.
/// Blank lines are never samples, here and in ``SampleParser``, so both count rows the same way.
/// - A row is one line; for CSV, a newline inside a quoted field does not end it (``CSVQuotes``),
///   so a row may span lines. Line numbers count physical lines; a row's number is its first line.
/// - A leading UTF-8 byte order mark (EF BB BF) is not part of any row or range.
/// - A shard's range starts at its first sample row and ends just after its last sample's newline
///   (or at end of input), so blank lines between shards belong to no range. Each range carries
///   the ``XXH64`` checksum of its bytes, computed in the same pass.
/// Shared by ``FileSharder`` (chunks from `read(2)`) and ``HTTPSharder`` (chunks from the network).
struct LineCutter {
    /// Where the input came from, as the user gave it, for error messages.
    let source: String
    let format: LineFormat
    /// The id field asked for; nil gives every sample a `<source>:<line>` id.
    let idField: IDField?
    let samplesPerShard: Int
    let maxSampleBytes: Int

    /// Bytes scanned so far: the absolute offset of the next chunk's first byte.
    private var offset: Int64 = 0
    /// 1-based number of the physical line being scanned.
    private var lineNumber: Int64 = 1
    /// The row being scanned: its absolute offset and first line.
    private var rowStart: Int64 = 0
    private var rowFirstLine: Int64 = 1
    /// Bytes of the current row seen so far, its final newline excluded.
    private var rowLength = 0
    private var rowHasContent = false
    private var lastByteWasCR = false
    /// Quote state for CSV; nil for JSON lines, which take the plain `memchr` path.
    private var quotes: CSVQuotes?
    /// The input's first bytes while they may still be a byte order mark.
    private var bomCandidate: [UInt8] = []
    private var bomDone = false

    /// The CSV header's bytes while it is being read (bounded by `maxSampleBytes`).
    private var headerBytes: [UInt8] = []
    /// The CSV header line's text once read (nil for JSON lines).
    private(set) var header: String?
    private var headerDone: Bool
    /// The id field ranges carry: known at once for JSON lines, after the header for CSV.
    private var rangeIDField: String?

    private var shardStart: Int64 = 0
    private var shardFirstLine: Int64 = 1
    private var shardSamples = 0
    private var lastSampleEnd: Int64 = 0
    /// Samples seen so far.
    private(set) var samples: Int64 = 0
    private(set) var ranges: [ByteRange] = []
    private(set) var sampleCounts: [Int] = []

    /// The open shard's checksum so far, over bytes up to `hashedUpTo`.
    private var hasher = XXH64()
    private var hashedUpTo: Int64 = 0
    /// `hasher` as it was at `lastSampleEnd`, for a last shard followed by blank lines.
    private var hasherAtLastSample = XXH64()
    /// The current row's bytes from earlier chunks while no shard is open (at most one row): the
    /// row may turn out to open the next shard, whose checksum starts with them.
    private var rowCarry: [UInt8] = []

    private static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    init(source: String, format: LineFormat, idField: IDField?, samplesPerShard: Int, maxSampleBytes: Int) throws(FlotillaError) {
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
        self.quotes = format == .csv ? CSVQuotes() : nil
        self.rangeIDField = format == .csv ? nil : idField?.name
    }

    /// Bytes consumed so far, a partly seen byte order mark included.
    var consumed: Int64 { offset + Int64(bomDone ? 0 : bomCandidate.count) }

    /// Scans one chunk; chunks must be given in input order.
    mutating func consume(_ chunk: UnsafeRawBufferPointer) throws(FlotillaError) {
        guard let base = chunk.baseAddress, chunk.count > 0 else { return }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        guard !bomDone else { return try scan(bytes, count: chunk.count) }
        // The mark may arrive split over chunks (HTTP chunks can be one byte).
        let taken = min(Self.byteOrderMark.count - bomCandidate.count, chunk.count)
        let earlier = bomCandidate
        bomCandidate += UnsafeBufferPointer(start: bytes, count: taken)
        if bomCandidate == Self.byteOrderMark {
            bomDone = true
            offset = Int64(Self.byteOrderMark.count)
            rowStart = offset
            try scan(bytes + taken, count: chunk.count - taken)
        } else if Self.byteOrderMark.starts(with: bomCandidate) {
            return  // still a prefix of the mark and the chunk is used up
        } else {
            bomDone = true
            try earlier.withUnsafeBufferPointer { (buffer) throws(FlotillaError) in
                if let start = buffer.baseAddress { try scan(start, count: buffer.count) }
            }
            try scan(bytes, count: chunk.count)
        }
    }

    /// Ends the input: takes a last row without a trailing newline and the last partial shard.
    /// Throws when the input is empty or holds no sample.
    mutating func finish() throws(FlotillaError) -> [ByteRange] {
        if !bomDone {
            // An input of one or two bytes that begin like a byte order mark.
            bomDone = true
            let pending = bomCandidate
            try pending.withUnsafeBufferPointer { (buffer) throws(FlotillaError) in
                if let start = buffer.baseAddress { try scan(start, count: buffer.count) }
            }
        }
        if offset == 0 {
            throw FlotillaError(.invalidInput, "input \(source) is empty")
        }
        if rowStart < offset { try endRow(at: offset, chunk: nil) }
        if shardSamples > 0 { cut(at: lastSampleEnd, chunk: nil) }
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

    /// The chunk being scanned, for hashing: its bytes and absolute offset.
    private struct Chunk {
        let bytes: UnsafePointer<UInt8>
        let base: Int64
    }

    private mutating func scan(_ bytes: UnsafePointer<UInt8>, count: Int) throws(FlotillaError) {
        guard count > 0 else { return }
        let chunk = Chunk(bytes: bytes, base: offset)
        var position = 0
        while position < count {
            let found = memchr(bytes + position, 0x0A, count - position)
            let end = found.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) - bytes } ?? count
            let segment = end - position
            if segment > 0 {
                if !rowHasContent {
                    // Usually one byte: a sample row starts with a non-blank byte.
                    var index = position
                    while index < end, Self.isBlankByte(bytes[index]) { index += 1 }
                    rowHasContent = index < end
                }
                rowLength += segment
                lastByteWasCR = bytes[end - 1] == 0x0D
                // A row over the sample limit is still a sample (the reader makes it an error result);
                // only a header over it, or a row past the hard limit (likely a missing closing
                // quote), fails the plan. +1 allows a carriage return before the newline.
                if rowLength > (headerDone ? overlongRowLimit : maxSampleBytes + 1) { throw overlong() }
                if !headerDone {
                    headerBytes.append(contentsOf: UnsafeBufferPointer(start: bytes + position, count: segment))
                }
                quotes?.scan(bytes + position, count: segment)
            }
            guard found != nil else { break }
            position = end + 1
            if quotes?.newlineEndsRow() == false {
                // A newline inside a quoted field: part of the row, which goes on.
                lineNumber += 1
                rowLength += 1
                lastByteWasCR = false
                if !headerDone { headerBytes.append(0x0A) }
                continue
            }
            try endRow(at: chunk.base + Int64(position), chunk: chunk)
        }
        offset += Int64(count)
        flushChecksum(chunk, upTo: offset)
    }

    /// At a chunk's end, before its bytes go: hash what the open shard holds of them, or keep the
    /// partial row while no shard is open.
    private mutating func flushChecksum(_ chunk: Chunk, upTo end: Int64) {
        if shardSamples > 0 {
            if lastSampleEnd > hashedUpTo {
                hash(chunk, upTo: lastSampleEnd)
                hasherAtLastSample = hasher
            }
            hash(chunk, upTo: end)
        } else if rowStart < end {
            let from = max(rowStart, chunk.base)
            rowCarry.append(contentsOf: UnsafeBufferPointer(start: chunk.bytes + Int(from - chunk.base), count: Int(end - from)))
        }
    }

    private mutating func hash(_ chunk: Chunk, upTo end: Int64) {
        guard end > hashedUpTo else { return }
        hasher.update(UnsafeRawBufferPointer(start: chunk.bytes + Int(hashedUpTo - chunk.base), count: Int(end - hashedUpTo)))
        hashedUpTo = end
    }

    private mutating func endRow(at end: Int64, chunk: Chunk?) throws(FlotillaError) {
        let length = rowLength - (lastByteWasCR ? 1 : 0)
        if length > (headerDone ? overlongRowLimit : maxSampleBytes) { throw overlong() }
        if rowHasContent {
            if !headerDone {
                try takeHeader()
            } else {
                if shardSamples == 0 { openShard(chunk) }
                shardSamples += 1
                samples += 1
                lastSampleEnd = end
                if shardSamples == samplesPerShard { cut(at: end, chunk: chunk) }
            }
        }
        lineNumber += 1
        rowStart = end
        rowFirstLine = lineNumber
        rowLength = 0
        rowHasContent = false
        lastByteWasCR = false
        rowCarry.removeAll(keepingCapacity: true)
        if !headerDone { headerBytes.removeAll(keepingCapacity: true) }
    }

    /// Starts a shard at the current row; its bytes from earlier chunks are in `rowCarry`.
    private mutating func openShard(_ chunk: Chunk?) {
        shardStart = rowStart
        shardFirstLine = rowFirstLine
        hasher = XXH64()
        let chunkBase = chunk?.base ?? offset
        if rowStart < chunkBase {
            hasher.update(rowCarry)
            hashedUpTo = chunkBase
        } else {
            hashedUpTo = rowStart
        }
    }

    private mutating func cut(at end: Int64, chunk: Chunk?) {
        var final = hasher
        if end < hashedUpTo {
            final = hasherAtLastSample  // the last shard, followed by blank lines already hashed
        } else if let chunk {
            hash(chunk, upTo: end)
            final = hasher
        }
        ranges.append(ByteRange(
            offset: shardStart, length: end - shardStart, firstLine: shardFirstLine,
            format: format, header: header, idField: rangeIDField, checksum: final.checksum
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
            throw FlotillaError(.invalidInput, "input \(source): CSV header (line \(rowFirstLine)) is not valid UTF-8")
        }
        let columns: [String]
        switch CSVRow.split(text) {
        case .success(let fields): columns = fields
        case .failure(let error):
            throw FlotillaError(.invalidInput, "input \(source): CSV header (line \(rowFirstLine)): \(error.message)")
        }
        var seen = Set<String>()
        for column in columns where !seen.insert(column).inserted {
            throw FlotillaError(.invalidInput, "input \(source): CSV header has the column '\(column)' twice")
        }
        switch idField {
        case .named(let name)? where !seen.contains(name):
            throw FlotillaError(
                .invalidConfiguration,
                "id column '\(name)' is not in the CSV header of \(source) (columns: \(columns.joined(separator: ", ")))"
            )
        case .standard? where !seen.contains(IDField.standard.name):
            rangeIDField = nil  // no `id` column and none asked for: `<source>:<line>` ids
        default:
            rangeIDField = idField?.name
        }
        header = text
    }

    /// Rows longer than the sample limit end as error results; past this they fail the plan, as
    /// a reader would have to hold them whole.
    var overlongRowLimit: Int { max(64 << 20, 4 * maxSampleBytes) }

    private func overlong() -> FlotillaError {
        let hint = quotes?.inQuotes == true ? " (it is inside a quoted field: is a closing quote missing?)" : ""
        let limit = headerDone ? "\(overlongRowLimit)-byte row limit" : "\(maxSampleBytes)-byte sample limit"
        return FlotillaError(.invalidInput, "input \(source) line \(rowFirstLine) is longer than the \(limit)\(hint)")
    }

    /// Space, tab or carriage return: the bytes a blank line may hold.
    @inline(__always)
    static func isBlankByte(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D
    }
}
