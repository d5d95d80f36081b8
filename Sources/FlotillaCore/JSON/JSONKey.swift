#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An object key as it appears in the input: compared without decoding unless it holds escapes.
public struct JSONKey {
    /// The bytes between the quotes.
    public let raw: UnsafeBufferPointer<UInt8>
    /// Whether `raw` holds backslash escapes.
    public let escaped: Bool

    /// Whether the key is `name` (one byte comparison when it has no escapes).
    public func matches(_ name: String) -> Bool {
        if escaped { return string == name }
        var name = name
        return name.withUTF8 { $0.count == raw.count && (raw.count == 0 || memcmp($0.baseAddress!, raw.baseAddress!, raw.count) == 0) }
    }

    /// The decoded key.
    public var string: String {
        guard escaped else { return String(decoding: raw, as: UTF8.self) }
        return String(decoding: JSONKey.unescape(raw), as: UTF8.self)
    }

    /// The content of a string that the scanner already validated, with escapes decoded.
    static func unescape(_ raw: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var index = 0
        func hex4(_ at: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 << 4 | UInt32(JSONScanner.hexDigit(raw[at + $1]) ?? 0) }
        }
        while index < raw.count {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                index += 1
                continue
            }
            let kind = raw[index + 1]
            index += 2
            switch kind {
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = hex4(index)
                index += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (hex4(index + 2) - 0xDC00)
                    index += 6
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar) ?? "\u{FFFD}")).utf8)
            default: out.append(kind)  // " \ /
            }
        }
        return out
    }
}
