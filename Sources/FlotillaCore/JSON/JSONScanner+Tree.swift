extension JSONScanner {
    /// The value at the cursor as a tree (duplicate keys: the last wins).
    public mutating func value() -> JSONValue? {
        skipWhitespace()
        guard index < bytes.count else { return failed("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"):
            var members: [String: JSONValue] = [:]
            let ok = forEachMember { scanner, key in
                guard let member = scanner.value() else { return false }
                members[key.string] = member
                return true
            }
            return ok ? .object(members) : nil
        case UInt8(ascii: "["):
            var elements: [JSONValue] = []
            let ok = forEachElement { scanner in
                guard let element = scanner.value() else { return false }
                elements.append(element)
                return true
            }
            return ok ? .array(elements) : nil
        case UInt8(ascii: "\""): return string().map(JSONValue.string)
        case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
        case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
        case UInt8(ascii: "n"): return literal("null") ? .null : nil
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return number()
        default: return failed("unexpected character '\(Self.describe(bytes[index]))'")
        }
    }
}
