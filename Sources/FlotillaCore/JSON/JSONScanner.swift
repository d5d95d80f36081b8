/// The one JSON reader (RFC 8259) of Flotilla: a cursor over UTF-8 bytes that validates values
/// without building anything (`skipValue`), walks objects and arrays member by member, and builds
/// a ``JSONValue`` tree only when asked (`value`).
///
/// Written for the hot path: one pass, no `Any` boxes, no thrown errors per value. Integers that fit
/// `Int64` stay `.int`. Nesting deeper than `maxDepth` is refused so hostile input cannot exhaust
/// the stack. The first problem is kept in `failure`, with the cursor at the offending byte.
/// The caller guarantees valid UTF-8 (``isValidUTF8(_:)``) before decoding strings.
/// Valid only inside the `withUnsafeBufferPointer` scope that produced `bytes`.
public struct JSONScanner {
    /// Deeper nesting is refused.
    public static let defaultMaxDepth = 512

    public let bytes: UnsafeBufferPointer<UInt8>
    /// The cursor: the offset of the next unread byte.
    public var index = 0
    /// Why the scan stopped, once it failed.
    public private(set) var failure: String?
    private let maxDepth: Int
    private var depth = 0

    public init(_ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = JSONScanner.defaultMaxDepth) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    /// Whether the cursor is past the last byte.
    public var isAtEnd: Bool { index >= bytes.count }

    /// The byte at the cursor, if any.
    @inline(__always)
    public var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    /// Records the first failure; always returns false so callers can `return fail(...)`.
    @discardableResult
    public mutating func fail(_ message: String) -> Bool {
        if failure == nil { failure = message }
        return false
    }

    @inline(__always)
    public mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    /// Whether only whitespace is left; records a failure otherwise.
    public mutating func expectEnd() -> Bool {
        skipWhitespace()
        return index == bytes.count || fail("unexpected data after the value")
    }

    // MARK: Validation without a tree

    /// Validates one value at the cursor (after whitespace) and moves past it.
    public mutating func skipValue() -> Bool {
        skipWhitespace()
        guard index < bytes.count else { return fail("unexpected end of input") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return forEachMember { scanner, _ in scanner.skipValue() }
        case UInt8(ascii: "["): return skipArray()
        case UInt8(ascii: "\""): return skipString()
        case UInt8(ascii: "t"): return literal("true")
        case UInt8(ascii: "f"): return literal("false")
        case UInt8(ascii: "n"): return literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return skipNumber()
        default: return fail("unexpected character '\(Self.describe(bytes[index]))'")
        }
    }

    /// Moves past a number, checking only its syntax: the hottest loop when inputs are vectors,
    /// so the cursor lives in a local (a register) rather than in `self` while it runs.
    @inline(__always)
    private mutating func skipNumber() -> Bool {
        let count = bytes.count
        let base = bytes.baseAddress!  // the caller checked index < count, so there are bytes
        @inline(__always) func isDigit(_ at: Int) -> Bool { at < count && base[at] &- UInt8(ascii: "0") < 10 }
        /// Past the run of digits at `at`: eight bytes at a time where eight are left, so how
        /// long the run is decides no branch.
        @inline(__always) func skipDigits(_ at: Int) -> Int {
            var at = at
            while at + 8 <= count {
                let word = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self).littleEndian
                // A byte's high bit is set in `above` when it is over "9", in `below` when under "0",
                // in `word` when not ASCII. Carries and borrows only spill into bytes after a
                // non-digit, which the lowest set bit already excludes.
                let above = word &+ 0x4646_4646_4646_4646
                let below = word &- 0x3030_3030_3030_3030
                let nonDigits = (above | below | word) & 0x8080_8080_8080_8080
                if nonDigits != 0 { return at + nonDigits.trailingZeroBitCount >> 3 }
                at += 8
            }
            while isDigit(at) { at += 1 }
            return at
        }
        var at = index
        defer { index = at }
        // Branch-free sign and leading zero: both are coin flips in real data, and a mispredicted
        // branch per number cost more than its digits.
        at &+= Int(unsafeBitCast(base[at] == UInt8(ascii: "-"), to: UInt8.self))
        guard isDigit(at) else { return fail("invalid number") }
        let integerStart = at
        repeat { at += 1 } while isDigit(at)
        let leadingZero = unsafeBitCast(base[integerStart] == UInt8(ascii: "0"), to: UInt8.self)
        let longer = unsafeBitCast(at &- integerStart > 1, to: UInt8.self)
        // "01": the number is the "0", and what follows fails where the caller expects a separator.
        if leadingZero & longer != 0 {
            at = integerStart + 1
            return true
        }
        if at < count && base[at] == UInt8(ascii: ".") {
            let fractionStart = at + 1
            at = skipDigits(fractionStart)
            guard at > fractionStart else { return fail("invalid number") }
        }
        if at < count && (base[at] | 0x20) == UInt8(ascii: "e") {
            at += 1
            if at < count && (base[at] == UInt8(ascii: "+") || base[at] == UInt8(ascii: "-")) { at += 1 }
            let exponentStart = at
            at = skipDigits(exponentStart)
            guard at > exponentStart else { return fail("invalid number") }
        }
        return true
    }

    /// Moves past the array at the cursor. Numbers, the usual elements of model inputs, are
    /// checked inline rather than through `skipValue` and a closure per element.
    private mutating func skipArray() -> Bool {
        guard let empty = open(UInt8(ascii: "["), UInt8(ascii: "]"), expected: "expected an array") else { return false }
        if empty { return true }
        // A list of numbers, 64 bytes at a time; anything else, errors included, goes on below.
        if let end = NumberListScanner.end(of: bytes, from: index) {
            index = end
            depth -= 1
            return true
        }
        return skipItems()
    }

    /// The rest of the array whose `[` was read, item by item: the reference for the rules and
    /// the error messages (`NumberListScanner` only ever declines to this).
    mutating func skipItems() -> Bool {
        while true {
            skipWhitespace()
            guard index < bytes.count else { return fail("unexpected end of input") }
            let byte = bytes[index]
            if Self.startsNumber(byte) {
                guard skipNumber() else { return false }
                // A compact run of numbers ("0.5,-1,2"): number to number, without the general path.
                while index + 1 < bytes.count && bytes[index] == UInt8(ascii: ",") && Self.startsNumber(bytes[index + 1]) {
                    index += 1
                    guard skipNumber() else { return false }
                }
            } else {
                guard skipValue() else { return false }
            }
            guard let closed = next(UInt8(ascii: "]"), expected: "expected ',' or ']'") else { return false }
            if closed { return true }
        }
    }

    /// Walks the object at the cursor: for each member, `body` gets the scanner positioned at the
    /// member's value (after whitespace) and the key, and must consume the value. Duplicate keys
    /// are passed on as they come.
    public mutating func forEachMember(_ body: (inout JSONScanner, JSONKey) -> Bool) -> Bool {
        guard let empty = open(UInt8(ascii: "{"), UInt8(ascii: "}"), expected: "expected an object") else { return false }
        if empty { return true }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return fail("expected a string key") }
            let keyStart = index + 1
            guard let escaped = skipStringReportingEscapes() else { return false }
            let key = JSONKey(raw: UnsafeBufferPointer(rebasing: bytes[keyStart..<(index - 1)]), escaped: escaped)
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return fail("expected ':'") }
            index += 1
            skipWhitespace()
            guard body(&self, key) else { return false }
            guard let closed = next(UInt8(ascii: "}"), expected: "expected ',' or '}'") else { return false }
            if closed { return true }
        }
    }

    /// Walks the array at the cursor: `body` gets the scanner at each element (after whitespace)
    /// and must consume it.
    public mutating func forEachElement(_ body: (inout JSONScanner) -> Bool) -> Bool {
        guard let empty = open(UInt8(ascii: "["), UInt8(ascii: "]"), expected: "expected an array") else { return false }
        if empty { return true }
        while true {
            skipWhitespace()
            guard body(&self) else { return false }
            guard let closed = next(UInt8(ascii: "]"), expected: "expected ',' or ']'") else { return false }
            if closed { return true }
        }
    }

    /// Enters the object or array at the cursor: whether it is empty (and already left), nil on failure.
    private mutating func open(_ opener: UInt8, _ closer: UInt8, expected: String) -> Bool? {
        skipWhitespace()
        guard index < bytes.count, bytes[index] == opener else { return failed(expected) }
        guard enter() else { return nil }
        index += 1
        skipWhitespace()
        guard index < bytes.count && bytes[index] == closer else { return false }
        index += 1
        depth -= 1
        return true
    }

    /// After an item: true when the container closed (and was left), false at a comma, nil on failure.
    private mutating func next(_ closer: UInt8, expected: String) -> Bool? {
        skipWhitespace()
        guard index < bytes.count else { return failed("unexpected end of input") }
        if bytes[index] == UInt8(ascii: ",") {
            index += 1
            return false
        }
        guard bytes[index] == closer else { return failed(expected) }
        index += 1
        depth -= 1
        return true
    }

    /// Validates the value at the cursor and returns its byte range (without surrounding whitespace).
    public mutating func skipValueRange() -> Range<Int>? {
        skipWhitespace()
        let start = index
        guard skipValue() else { return nil }
        return start..<index
    }

    private mutating func enter() -> Bool {
        depth += 1
        return depth <= maxDepth || fail("nested deeper than \(maxDepth) levels")
    }

    mutating func literal(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { return fail("unexpected end of input") }
        let pointer = word.utf8Start
        for offset in 0..<count where bytes[index + offset] != pointer[offset] {
            return fail("invalid literal")
        }
        index += count
        return true
    }

    private mutating func skipString() -> Bool { skipStringReportingEscapes() != nil }

    /// Moves past the string at the cursor (its opening quote); whether it held escapes, or nil.
    private mutating func skipStringReportingEscapes() -> Bool? {
        index += 1
        var escaped = false
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                index += 1
                return escaped
            }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                guard index + 1 < bytes.count else { break }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    index += 2
                    guard let scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            fail("lone surrogate in \\u escape")
                            return nil
                        }
                        index += 2
                        guard let low = hex4() else { return nil }
                        guard (0xDC00..<0xE000).contains(low) else {
                            fail("lone surrogate in \\u escape")
                            return nil
                        }
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        fail("lone surrogate in \\u escape")
                        return nil
                    }
                default:
                    index += 1
                    fail("invalid escape '\\\(Self.describe(bytes[index]))'")
                    return nil
                }
                continue
            }
            if byte < 0x20 {
                fail("control character in string")
                return nil
            }
            index += 1
        }
        fail("unterminated string")
        return nil
    }

    // MARK: Scalars

    /// The string at the cursor (which must be its opening quote), decoded.
    public mutating func string() -> String? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
            fail("expected a string")
            return nil
        }
        let start = index + 1
        guard let escaped = skipStringReportingEscapes() else { return nil }
        return JSONKey(raw: UnsafeBufferPointer(rebasing: bytes[start..<(index - 1)]), escaped: escaped).string
    }

    /// The number at the cursor: `.int` when it is an integer that fits `Int64`, else `.double`.
    public mutating func number() -> JSONValue? {
        let start = index
        switch lexNumber() {
        case nil: return nil
        case .integer(let value)?: return .int(value)
        case .other?:
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            guard let double = Double(text) else { return failed("invalid number") }
            return .double(double)
        }
    }

    private enum LexedNumber { case integer(Int64), other }

    /// Moves past a number, checking its syntax; converts only integers (no `strtod` when validating).
    private mutating func lexNumber() -> LexedNumber? {
        var negative = false
        if index < bytes.count && bytes[index] == UInt8(ascii: "-") {
            negative = true
            index += 1
        }
        guard index < bytes.count, Self.isDigit(bytes[index]) else { return failed("invalid number") }
        // Accumulated as a negative value so that Int64.min parses.
        var integer: Int64 = 0
        var fits = true
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, Self.isDigit(bytes[index]) {
                if fits {
                    let (shifted, overflow1) = integer.multipliedReportingOverflow(by: 10)
                    let (next, overflow2) = shifted.subtractingReportingOverflow(Int64(bytes[index] - UInt8(ascii: "0")))
                    if overflow1 || overflow2 { fits = false } else { integer = next }
                }
                index += 1
            }
        }
        var isInteger = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            isInteger = false
            index += 1
            guard index < bytes.count, Self.isDigit(bytes[index]) else { return failed("invalid number") }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, Self.isDigit(bytes[index]) else { return failed("invalid number") }
            while index < bytes.count, Self.isDigit(bytes[index]) { index += 1 }
        }
        if isInteger && fits {
            if negative { return .integer(integer) }
            if integer != .min { return .integer(-integer) }
        }
        return .other
    }

    private mutating func hex4() -> UInt32? {
        guard index + 4 <= bytes.count else {
            fail("truncated \\u escape")
            return nil
        }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Self.hexDigit(bytes[index]) else {
                fail("invalid hex digit in \\u escape")
                return nil
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    mutating func failed<T>(_ message: String) -> T? {
        fail(message)
        return nil
    }
}
