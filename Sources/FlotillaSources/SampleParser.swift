#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore

/// Turns the bytes of one shard's byte range into samples.
///
/// Rules, the same for files and HTTP sources:
/// - **Blank lines** (only spaces, tabs, carriage returns) are not samples and are skipped, exactly
///   as ``LineCutter`` skips them when counting; line numbers still count them.
/// - **A bad line never fails the shard**: invalid UTF-8, malformed JSON, a ragged or badly quoted
///   CSV row each become a sample whose input is `.failure` with a message starting `line N:`.
/// - **Ids**: the `idField` value when present — a JSON string or integer (written in decimal), or a
///   non-empty CSV cell; a JSON id that is null or absent, or an empty CSV cell, falls back to
///   `<source>:<line>` where `<source>` is the file path or URL as given. A JSON id of another type
///   (bool, double, array, object) is a sample error, with the fallback id.
/// - **Duplicate ids within a shard**: the first occurrence is read normally; each later one becomes
///   an error sample "duplicate sample id 'x' (first at data.jsonl:3)" whose id is its own
///   `<source>:<line>`, so ids stay unique within the shard's results and the error is not
///   mistaken for the first sample's result. Duplicates in different shards are not detected.
/// - **CSV**: each row becomes an object keyed by the header's columns; values stay strings. A
///   quoted field may hold newlines (RFC 4180): the row then spans lines and is numbered by its
///   first line; a quote still open at the end of the input is an error sample for that row.
/// - **Byte order mark**: a leading UTF-8 BOM (EF BB BF) is not part of the first row.
enum SampleParser {
    /// Parses `buffer`, the whole range of a shard, whose first line is `range.firstLine`.
    /// A row longer than `maxSampleBytes` is an error sample (its id kept when it has one).
    /// JSON-lines inputs are slices of `buffer`: one allocation per shard, not one per sample.
    static func parse(_ buffer: [UInt8], source: String, range: ByteRange,
                      maxSampleBytes: Int? = nil, expected: Int? = nil) throws(FlotillaError) -> [Sample] {
        var columns: [String] = []
        if range.format == .csv {
            guard let header = range.header else {
                throw FlotillaError(.invalidInput, "shard of CSV input \(source) carries no header line")
            }
            switch CSVRow.split(header) {
            case .success(let fields): columns = fields
            case .failure(let error):
                throw FlotillaError(.invalidInput, "CSV header of \(source): \(error.message)")
            }
        }
        return buffer.withUnsafeBytes { bytes in
            parseRows(bytes, of: buffer, source: source, range: range, columns: columns, maxSampleBytes: maxSampleBytes,
                      expected: expected)
        }
    }

    private static func parseRows(_ bytes: UnsafeRawBufferPointer, of buffer: [UInt8], source: String, range: ByteRange,
                                  columns: [String], maxSampleBytes: Int?, expected planned: Int?) -> [Sample] {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return [] }
        let start = base.assumingMemoryBound(to: UInt8.self)
        // The planned count, else a guess (lines of ~64+ bytes) that avoids most regrowth and rehashing.
        let expected = min(planned ?? bytes.count / 64, 1 << 20)
        var ids = DuplicateIDs(source: source, capacity: expected)
        var samples: [Sample] = []
        samples.reserveCapacity(expected)
        var quotes: CSVQuotes? = range.format == .csv ? CSVQuotes() : nil
        var lineNumber = range.firstLine
        let count = bytes.count
        // Ranges start after a byte order mark; one written before marks were skipped may not.
        var position = range.offset == 0 && startsWithByteOrderMark(bytes) ? 3 : 0
        var rowStart = position
        var rowLine = lineNumber
        while rowStart < count {
            let found = memchr(start + position, 0x0A, count - position)
            let end = found.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) - start } ?? count
            if var csv = quotes {
                // Only CSV rows go on past a newline inside a quoted field (to the end at most).
                csv.scan(start + position, count: end - position)
                let endsRow = found == nil || end + 1 == count || csv.newlineEndsRow()
                quotes = csv
                if !endsRow {
                    lineNumber += 1
                    position = end + 1
                    continue
                }
            }
            var rowEnd = end
            if rowEnd > rowStart && start[rowEnd - 1] == 0x0D { rowEnd -= 1 }
            let row = UnsafeBufferPointer(start: start + rowStart, count: rowEnd - rowStart)
            if !isBlank(row) {
                var sample = parseLine(row, at: rowStart, of: buffer, number: rowLine, source: source, range: range, columns: columns)
                if let maxSampleBytes, row.count > maxSampleBytes {
                    sample.input = .failure(SampleError(
                        "line \(rowLine) is \(row.count) bytes, over the \(maxSampleBytes)-byte sample limit (shard.maxSampleBytes)"))
                }
                samples.append(ids.check(sample, line: rowLine))
            }
            lineNumber += 1
            position = end + 1
            rowStart = position
            rowLine = lineNumber
        }
        return samples
    }

    /// Whether `bytes` begin with the UTF-8 byte order mark EF BB BF.
    static func startsWithByteOrderMark(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF
    }

    /// One row: `line` is `buffer`'s bytes from `offset` on.
    private static func parseLine(
        _ line: UnsafeBufferPointer<UInt8>, at offset: Int, of buffer: [UInt8], number: Int64, source: String,
        range: ByteRange, columns: [String]
    ) -> Sample {
        // Built only when needed: interpolating it for every line costs more than the JSON parse.
        var fallbackID: String { "\(source):\(number)" }
        guard UTF8Validation.isValid(line) else {
            return Sample(id: fallbackID, input: .failure(SampleError("line \(number): invalid UTF-8")))
        }
        switch range.format {
        case .jsonl:
            return jsonSample(line, at: offset, of: buffer, number: number, idField: range.idField, fallbackID: fallbackID)
        case .csv:
            switch CSVRow.split(line) {
            case .failure(let error):
                return Sample(id: fallbackID, input: .failure(SampleError("line \(number): \(error.message)")))
            case .success(let fields):
                guard fields.count == columns.count else {
                    return Sample(id: fallbackID, input: .failure(SampleError(
                        "line \(number): row has \(fields.count) fields, the header has \(columns.count)"
                    )))
                }
                // The row's object is written once, in column order; it travels as these bytes.
                var object: [UInt8] = [UInt8(ascii: "{")]
                object.reserveCapacity(line.count + 8 * fields.count)
                var id: String?
                for (position, (column, field)) in zip(columns, fields).enumerated() {
                    if position > 0 { object.append(UInt8(ascii: ",")) }
                    JSONWriter.write(column, into: &object)
                    object.append(UInt8(ascii: ":"))
                    JSONWriter.write(field, into: &object)
                    if column == range.idField && !field.isEmpty { id = field }
                }
                object.append(UInt8(ascii: "}"))
                return Sample(id: id ?? fallbackID, input: .success(JSONBytes(trusted: object)))
            }
        }
    }

    /// A JSON line validated in one scan that builds no tree; the id field is read on the way.
    private static func jsonSample(
        _ line: UnsafeBufferPointer<UInt8>, at offset: Int, of buffer: [UInt8], number: Int64, idField: String?,
        fallbackID: @autoclosure () -> String
    ) -> Sample {
        var scanner = JSONScanner(line)
        scanner.skipWhitespace()
        let start = scanner.index
        var id = SampleID.absent
        let valid: Bool
        if let idField, scanner.current == UInt8(ascii: "{") {
            valid = scanner.forEachMember { scanner, key in
                guard key.matches(idField) else { return scanner.skipValue() }
                id = SampleID.read(&scanner)  // a repeated key: the last one wins
                return scanner.failure == nil
            }
        } else {
            valid = scanner.skipValue()
        }
        let end = scanner.index
        guard valid, scanner.expectEnd() else {
            return Sample(id: fallbackID(), input: .failure(SampleError(
                "line \(number): malformed JSON: \(scanner.failure ?? "unexpected input") at column \(scanner.index + 1)")))
        }
        let input = JSONBytes(trusted: buffer[(offset + start)..<(offset + end)])
        switch id {
        case .absent: return Sample(id: fallbackID(), input: .success(input))
        case .text(let text): return Sample(id: text, input: .success(input))
        case .wrongType(let kind):
            return Sample(id: fallbackID(), input: .failure(SampleError(
                "line \(number): id field '\(idField ?? "")' must be a string or an integer, got \(kind)")))
        }
    }

    /// Only spaces, tabs and carriage returns (the same rule as ``LineCutter``).
    @inline(__always)
    static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        for byte in line where !LineCutter.isBlankByte(byte) { return false }
        return true
    }

}

/// A sample's id field as read from its line.
private enum SampleID {
    /// Absent or null: the sample gets its `<source>:<line>` id.
    case absent
    case text(String)
    /// Neither a string nor an integer; the kind is for the message.
    case wrongType(String)

    /// Reads the value at the scanner's cursor.
    static func read(_ scanner: inout JSONScanner) -> SampleID {
        switch scanner.current ?? 0 {
        case UInt8(ascii: "\""): return scanner.string().map(SampleID.text) ?? .absent
        case UInt8(ascii: "n"):
            _ = scanner.skipValue()
            return .absent
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            if case .int(let number)? = scanner.number() { return .text(String(number)) }
            return .wrongType("a number with a fraction or exponent")
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            _ = scanner.skipValue()
            return .wrongType("a boolean")
        case UInt8(ascii: "["):
            _ = scanner.skipValue()
            return .wrongType("an array")
        default:
            _ = scanner.skipValue()
            return .wrongType("an object")
        }
    }
}

/// Remembers where each sample id was first seen in a shard and turns later duplicates into errors.
///
/// While every id sorts after the one before it (ids written in order, the usual case), none can
/// repeat, so one comparison a sample stands for hashing it; the first id out of order builds the
/// table from the ids seen so far.
struct DuplicateIDs {
    let source: String
    private let capacity: Int
    /// Ids in ascending order with their lines, while they are; nil once the table took over.
    private var ascending: [(id: String, line: Int64)]? = []
    private var firstSeen: [String: Int64] = [:]

    init(source: String, capacity: Int = 0) {
        self.source = source
        self.capacity = capacity
        ascending?.reserveCapacity(capacity)
    }

    /// The sample itself, or an error sample when its id was already seen at an earlier line.
    /// `consuming`: the sample is moved through rather than copied, saving a retain and a release of its input.
    mutating func check(_ sample: consuming Sample, line: Int64) -> Sample {
        if ascending != nil {
            if ascending!.last.map({ $0.id < sample.id }) ?? true {
                ascending!.append((sample.id, line))
                return sample
            }
            firstSeen.reserveCapacity(max(capacity, ascending!.count + 1))
            for (id, line) in ascending! { firstSeen[id] = line }
            ascending = nil
        }
        // One hash per sample: duplicates are rare, so the first line is put back only for them.
        if let first = firstSeen.updateValue(line, forKey: sample.id) {
            firstSeen[sample.id] = first
            let ownID = "\(source):\(line)"
            firstSeen[ownID] = firstSeen[ownID] ?? line
            return Sample(id: ownID, input: .failure(SampleError(
                "duplicate sample id '\(sample.id)' (first at \(source):\(first))"
            )))
        }
        return sample
    }
}
