/// The one JSON writer of Flotilla: compact JSON appended to a byte buffer.
///
/// Object keys are written sorted, so the same value always gives the same bytes (hash-embed's
/// canonical text, deterministic frames). JSON has no NaN or infinity: a non-finite double is
/// written as the string `"NaN"`, `"Infinity"` or `"-Infinity"`, as ``RecordCodec`` does
/// (docs/PROTOCOL.md).
public enum JSONWriter {
    /// `value` as compact JSON bytes.
    public static func bytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        write(value, into: &out)
        return out
    }

    public static func write(_ value: JSONValue, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .int(let number): write(number, into: &out)
        case .double(let number):
            if number.isFinite {
                out.append(contentsOf: number.description.utf8)
            } else {
                write(number.isNaN ? "NaN" : number < 0 ? "-Infinity" : "Infinity", into: &out)
            }
        case .string(let text): write(text, into: &out)
        case .array(let items):
            out.append(UInt8(ascii: "["))
            for (position, item) in items.enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                write(item, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let object):
            out.append(UInt8(ascii: "{"))
            for (position, key) in object.keys.sorted().enumerated() {
                if position > 0 { out.append(UInt8(ascii: ",")) }
                write(key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(object[key]!, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    /// Decimal digits without a String allocation.
    public static func write(_ value: Int64, into out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        if magnitude < 10 {
            out.append(UInt8(ascii: "0") + UInt8(magnitude))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var count = 0
            while magnitude > 0 {
                digits[count] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
                count += 1
            }
            for position in stride(from: count - 1, through: 0, by: -1) { out.append(digits[position]) }
        }
    }

    public static func write(_ value: Int, into out: inout [UInt8]) { write(Int64(value), into: &out) }

    /// A JSON string literal for `text`.
    public static func write(_ text: String, into out: inout [UInt8]) {
        var text = text
        text.withUTF8 { write(utf8: $0, into: &out) }
    }

    /// A JSON string literal for UTF-8 `bytes`: quotes, backslashes and control characters escaped.
    public static func write(utf8 bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var runStart = 0
        for position in 0..<bytes.count {
            let byte = bytes[position]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<position]))
            runStart = position + 1
            switch byte {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            default:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]])
            }
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[runStart..<bytes.count]))
        out.append(UInt8(ascii: "\""))
    }

    /// `"key":` for a key known to need no escaping (ASCII letters).
    @inline(__always)
    public static func key(_ name: StaticString, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
    }

    /// A member of a record being written: the raw fragment before the value (`,"job":`), then the value.
    @inline(__always)
    public static func member(_ fragment: StaticString, _ value: String, into out: inout [UInt8]) {
        raw(fragment, into: &out)
        write(value, into: &out)
    }

    /// ``member(_:_:into:)`` for an integer.
    @inline(__always)
    public static func member(_ fragment: StaticString, _ value: Int64, into out: inout [UInt8]) {
        raw(fragment, into: &out)
        write(value, into: &out)
    }

    /// ``member(_:_:into:)`` for an integer.
    @inline(__always)
    public static func member(_ fragment: StaticString, _ value: Int, into out: inout [UInt8]) {
        member(fragment, Int64(value), into: &out)
    }

    /// Raw bytes, e.g. a literal fragment like `{"type":"predict"`.
    @inline(__always)
    public static func raw(_ fragment: StaticString, into out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: fragment.utf8Start, count: fragment.utf8CodeUnitCount))
    }
}
