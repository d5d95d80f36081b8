import Foundation

/// Encodes and decodes Flotilla records as JSON: one object, sorted keys, with `"v": 1`.
///
/// Decoding checks the version first and turns every failure into a `.codec` error naming the
/// record type and the problem: "shard record: unsupported version 7 (expected 1)",
/// "ack record: missing field 'run'", "shard record: not JSON: ...".
///
/// Non-finite numbers (NaN, infinity), which JSON cannot hold, are written as the strings "NaN",
/// "Infinity" and "-Infinity" rather than failing the encode.
public struct RecordCodec: Sendable {
    /// The record format version this build writes and accepts.
    public static let version = 1

    /// A shared codec; encoders are reused because creating one per record costs more than
    /// encoding a small record.
    public static let shared = RecordCodec()

    private let encoder: SharedJSONEncoder
    private let fallbackEncoder: SharedJSONEncoder
    private let decoder: SharedJSONDecoder

    public init() {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        self.encoder = SharedJSONEncoder(encoder)
        let fallback = JSONEncoder()
        fallback.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        fallback.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        self.fallbackEncoder = SharedJSONEncoder(fallback)
        self.decoder = SharedJSONDecoder(JSONDecoder())
    }

    /// The record as JSON bytes with `"v": 1`.
    public func encode<T: FlotillaRecord>(_ record: T) -> [UInt8] {
        if let writable = record as? any JSONWritableRecord { return Self.written(writable) }
        let versioned = VersionedRecord(record: record)
        do {
            return Array(try encoder.value.encode(versioned))
        } catch {
            // Only non-finite numbers make a record unencodable; write them as strings.
            return Array((try? fallbackEncoder.value.encode(versioned)) ?? Data("{\"v\":\(Self.version)}".utf8))
        }
    }

    /// A record that writes its own JSON, known statically: no cast (the cast cost a third as
    /// much as writing a result record, measured), so the hot path of one record per sample.
    public func encode<T: FlotillaRecord & JSONWritableRecord>(_ record: T) -> [UInt8] {
        Self.written(record)
    }

    private static func written(_ record: some JSONWritableRecord) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(record.estimatedJSONSize)
        record.writeJSON(into: &out)
        return out
    }

    /// Decodes a record of type `T`, checking its version.
    public func decode<T: FlotillaRecord>(_ type: T.Type, from bytes: [UInt8]) throws(FlotillaError) -> T {
        if let treeType = T.self as? any TreeDecodedRecord.Type, let record = Self.treeDecoded(treeType, from: bytes) as? T {
            return record
        }
        return try decode(type, from: Data(bytes))
    }

    /// Decodes a record of type `T` from `data`, checking its version.
    public func decode<T: FlotillaRecord>(_ type: T.Type, from data: Data) throws(FlotillaError) -> T {
        let name = T.recordName
        if data.isEmpty {
            throw FlotillaError(.codec, "\(name): not JSON: the record is empty")
        }
        do {
            let record = try decoder.value.decode(VersionedDecoding<T>.self, from: data).record
            if let problem = record.problem { throw RecordProblem(message: problem) }
            return record
        } catch let error as RecordProblem {
            throw FlotillaError(.codec, "\(name): \(error.message)")
        } catch let error as DecodingError {
            throw FlotillaError(.codec, "\(name): \(Self.describe(error))")
        } catch {
            throw FlotillaError(.codec, "\(name): cannot decode", underlying: error)
        }
    }

    /// A user-readable description of a decoding failure.
    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
            var text = ""
            for key in codingPath + (last.map { [$0] } ?? []) {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
                }
            }
            return text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "missing field '\(path(context.codingPath, key))'"
        case .valueNotFound(let type, let context):
            if context.codingPath.isEmpty { return "not a JSON object" }
            return "field '\(path(context.codingPath))' is null (expected \(typeName(type)))"
        case .typeMismatch(let type, let context):
            if context.codingPath.isEmpty { return "not a JSON object" }
            return "field '\(path(context.codingPath))' has the wrong type (expected \(typeName(type)))"
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                let detail = (context.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
                return "not JSON: \(detail ?? context.debugDescription)"
            }
            return "field '\(path(context.codingPath))': \(context.debugDescription)"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Int.Type, is Int64.Type, is Int32.Type: return "an integer"
        case is Double.Type, is Float.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") || name.hasPrefix("[") { return "a list" }
            if name.hasPrefix("Dictionary") || name.hasPrefix("KeyedDecodingContainer") { return "an object" }
            return name
        }
    }
}

/// A record that writes its own JSON (the same object its `Codable` form gives, `"v"` included),
/// for records written once per sample.
public protocol JSONWritableRecord {
    func writeJSON(into out: inout [UInt8])
    /// About how many bytes `writeJSON` appends, so the buffer is allocated once.
    var estimatedJSONSize: Int { get }
}

/// Writes `"v"` beside the record's own fields, in the same JSON object.
private struct VersionedRecord<T: Encodable>: Encodable {
    let record: T
    private enum Key: String, CodingKey { case v }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(RecordCodec.version, forKey: .v)
        try record.encode(to: encoder)
    }
}

/// Reads and checks `"v"` before decoding the record, in one JSON parse.
private struct VersionedDecoding<T: Decodable>: Decodable {
    let record: T
    private enum Key: String, CodingKey { case v }

    init(from decoder: any Decoder) throws {
        let container: KeyedDecodingContainer<Key>
        do {
            container = try decoder.container(keyedBy: Key.self)
        } catch {
            throw RecordProblem(message: "not a JSON object")
        }
        guard container.contains(.v) else {
            throw RecordProblem(message: "missing field 'v' (the record format version; expected \(RecordCodec.version))")
        }
        guard let version = try? container.decode(Int.self, forKey: .v) else {
            throw RecordProblem(message: "field 'v' must be the integer \(RecordCodec.version)")
        }
        guard version == RecordCodec.version else {
            throw RecordProblem(message: "unsupported version \(version) (expected \(RecordCodec.version))")
        }
        record = try T(from: decoder)
    }
}

/// A record that decodes but cannot be used: wrong version, not an object, or its own `problem`.
private struct RecordProblem: Error {
    let message: String
}

// JSONEncoder and JSONDecoder are safe to share across threads once configured: encode and decode
// read their options and keep no state between calls. These boxes say so to the compiler.
private final class SharedJSONEncoder: @unchecked Sendable {
    let value: JSONEncoder
    init(_ value: JSONEncoder) { self.value = value }
}

private final class SharedJSONDecoder: @unchecked Sendable {
    let value: JSONDecoder
    init(_ value: JSONDecoder) { self.value = value }
}
