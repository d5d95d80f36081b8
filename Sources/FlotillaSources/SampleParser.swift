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
/// - **CSV**: each row becomes an object keyed by the header's columns; values stay strings.
enum SampleParser {
    /// Parses `bytes`, the whole range of a shard, whose first line is `range.firstLine`.
    static func parse(_ bytes: UnsafeRawBufferPointer, source: String, range: ByteRange) throws(FlotillaError) -> [Sample] {
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
        guard let base = bytes.baseAddress, bytes.count > 0 else { return [] }
        let start = base.assumingMemoryBound(to: UInt8.self)
        // A guess at the sample count (lines of ~64+ bytes) that avoids most regrowth and rehashing.
        let expected = min(bytes.count / 64, 1 << 20)
        var ids = DuplicateIDs(source: source, capacity: expected)
        var samples: [Sample] = []
        samples.reserveCapacity(expected)
        var lineNumber = range.firstLine
        var position = 0
        let count = bytes.count
        while position < count {
            let found = memchr(start + position, 0x0A, count - position)
            let end = found.map { UnsafePointer($0.assumingMemoryBound(to: UInt8.self)) - start } ?? count
            var lineEnd = end
            if lineEnd > position && start[lineEnd - 1] == 0x0D { lineEnd -= 1 }
            let line = UnsafeBufferPointer(start: start + position, count: lineEnd - position)
            if !isBlank(line) {
                let sample = parseLine(line, number: lineNumber, source: source, range: range, columns: columns)
                samples.append(ids.check(sample, line: lineNumber))
            }
            lineNumber += 1
            position = end + 1
        }
        return samples
    }

    private static func parseLine(
        _ line: UnsafeBufferPointer<UInt8>, number: Int64, source: String, range: ByteRange, columns: [String]
    ) -> Sample {
        // Built only when needed: interpolating it for every line costs more than the JSON parse.
        var fallbackID: String { "\(source):\(number)" }
        guard isValidUTF8(line) else {
            return Sample(id: fallbackID, input: .failure(SampleError("line \(number): invalid UTF-8")))
        }
        switch range.format {
        case .jsonl:
            switch JSONLineParser.parse(line) {
            case .failure(let error):
                return Sample(id: fallbackID, input: .failure(SampleError("line \(number): \(error.message)")))
            case .success(let value):
                guard let idField = range.idField else { return Sample(id: fallbackID, input: .success(value)) }
                switch value[idField] {
                case .string(let id): return Sample(id: id, input: .success(value))
                case .int(let id): return Sample(id: String(id), input: .success(value))
                case nil, .null: return Sample(id: fallbackID, input: .success(value))
                case .some(let other):
                    return Sample(id: fallbackID, input: .failure(SampleError(
                        "line \(number): id field '\(idField)' must be a string or an integer, got \(kind(of: other))"
                    )))
                }
            }
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
                var object: [String: JSONValue] = [:]
                object.reserveCapacity(fields.count)
                var id: String?
                for (column, field) in zip(columns, fields) {
                    object[column] = .string(field)
                    if column == range.idField && !field.isEmpty { id = field }
                }
                return Sample(id: id ?? fallbackID, input: .success(.object(object)))
            }
        }
    }

    /// Only spaces, tabs and carriage returns (the same rule as ``LineCutter``).
    @inline(__always)
    static func isBlank(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        for byte in line where !LineCutter.isBlankByte(byte) { return false }
        return true
    }

    /// ASCII fast path, 8 bytes at a time; the standard library's validator for the rest.
    static func isValidUTF8(_ line: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = line.baseAddress else { return true }
        var index = 0
        let raw = UnsafeRawPointer(base)
        while index + 8 <= line.count {
            if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                return String(validating: line, as: UTF8.self) != nil
            }
            index += 8
        }
        while index < line.count {
            if line[index] >= 0x80 { return String(validating: line, as: UTF8.self) != nil }
            index += 1
        }
        return true
    }

    private static func kind(of value: JSONValue) -> String {
        switch value {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number with a fraction or exponent"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Remembers where each sample id was first seen in a shard and turns later duplicates into errors.
struct DuplicateIDs {
    let source: String
    private var firstSeen: [String: Int64] = [:]

    init(source: String, capacity: Int = 0) {
        self.source = source
        firstSeen.reserveCapacity(capacity)
    }

    /// The sample itself, or an error sample when its id was already seen at an earlier line.
    mutating func check(_ sample: Sample, line: Int64) -> Sample {
        if let first = firstSeen[sample.id] {
            let ownID = "\(source):\(line)"
            firstSeen[ownID] = firstSeen[ownID] ?? line
            return Sample(id: ownID, input: .failure(SampleError(
                "duplicate sample id '\(sample.id)' (first at \(source):\(first))"
            )))
        }
        firstSeen[sample.id] = line
        return sample
    }
}
