/// One JSON value as the bytes it travels in: validated once where it enters (a line of input, a
/// predictor's answer), then spliced into frames and records without building a tree. A
/// ``JSONValue`` is built only where something looks inside (`value`).
///
/// Equality is byte equality: `{"a":1}` and `{ "a": 1 }` differ. Compare `value`s for meaning.
///
/// The bytes may be a slice of a larger buffer (a shard's input range, a predictor's result frame):
/// the samples of one buffer share it rather than each copying out its own, and keep it alive.
public struct JSONBytes: Sendable, Hashable, CustomStringConvertible {
    /// One complete JSON value, UTF-8, without surrounding whitespace.
    public let bytes: ArraySlice<UInt8>

    /// Wraps bytes already known to hold one valid JSON value (from ``JSONScanner`` or ``JSONWriter``).
    public init(trusted bytes: [UInt8]) { self.bytes = bytes[...] }

    /// Wraps a slice already known to hold one valid JSON value; it shares the slice's buffer.
    public init(trusted bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    /// The compact JSON of `value`.
    public init(_ value: JSONValue) { bytes = JSONWriter.bytes(value)[...] }

    public static let null = JSONBytes(trusted: Array("null".utf8))

    /// Checks that `text` is valid UTF-8 holding one JSON value (whitespace around it allowed, and
    /// dropped).
    public static func validating(_ text: UnsafeBufferPointer<UInt8>) -> Result<JSONBytes, JSONSyntaxError> {
        guard UTF8Validation.isValid(text) else { return .failure(JSONSyntaxError(message: "invalid UTF-8", offset: 0)) }
        var scanner = JSONScanner(text)
        guard let range = scanner.skipValueRange(), scanner.expectEnd() else {
            return .failure(JSONSyntaxError(message: scanner.failure ?? "unexpected input", offset: scanner.index))
        }
        return .success(JSONBytes(trusted: Array(UnsafeBufferPointer(rebasing: text[range]))))
    }

    /// ``validating(_:)`` for an array of bytes.
    public static func validating(_ text: [UInt8]) -> Result<JSONBytes, JSONSyntaxError> {
        text.withUnsafeBufferPointer { validating($0) }
    }

    /// The value as a tree.
    public var value: JSONValue {
        bytes.withUnsafeBufferPointer { buffer in
            var scanner = JSONScanner(buffer)
            // Trusted bytes always parse; a failure here is a bug upstream, shown rather than hidden.
            return scanner.value() ?? .string("<invalid JSON: \(scanner.failure ?? "?")>")
        }
    }

    /// The JSON text.
    public var text: String { String(decoding: bytes, as: UTF8.self) }
    public var description: String { text }
}

extension JSONBytes: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try value.encode(to: encoder)
    }
}

/// Why bytes are not one JSON value: the problem and the 0-based byte offset where it was found.
public struct JSONSyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public init(message: String, offset: Int) {
        self.message = message
        self.offset = offset
    }
    public var description: String { "\(message) at byte \(offset)" }
}

/// UTF-8 validation with an ASCII fast path, 32 bytes at a time (then 8).
public enum UTF8Validation {
    public static func isValid(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = text.baseAddress else { return true }
        var index = 0
        let raw = UnsafeRawPointer(base)
        // Four words OR'ed before one test: a line of input is checked at a few bytes a cycle.
        while index + 32 <= text.count {
            let words = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            if words & 0x8080_8080_8080_8080 != 0 { return String(validating: text, as: UTF8.self) != nil }
            index += 32
        }
        while index + 8 <= text.count {
            if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 {
                return String(validating: text, as: UTF8.self) != nil
            }
            index += 8
        }
        while index < text.count {
            if text[index] >= 0x80 { return String(validating: text, as: UTF8.self) != nil }
            index += 1
        }
        return true
    }
}
