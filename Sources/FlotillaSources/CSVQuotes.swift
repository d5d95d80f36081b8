#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Whether a CSV scan is inside a quoted field, so a newline there does not end the row (RFC 4180).
///
/// Fed the bytes between newlines, in input order and in pieces of any size; the caller asks
/// ``newlineEndsRow()`` at each newline. The rule matches ``CSVRow``: a quote opens a quoted field
/// only at the start of a field (row start or after a comma); inside one, `""` is an escaped quote
/// and a lone `"` closes it; any other quote is a literal character. Only quotes are examined
/// (found with `memchr`), so rows without quotes cost one extra `memchr` per line.
/// ``LineCutter`` and ``SampleParser`` both use it, so shards and the reader cut rows alike.
struct CSVQuotes {
    private(set) var inQuotes = false
    /// A quote inside quotes was the last byte seen: the next byte says escape or close.
    private var pendingQuote = false
    /// The byte before the next one fed; a newline at row start.
    private var previous: UInt8 = 0x0A

    /// Takes `count` bytes that hold no newline.
    mutating func scan(_ bytes: UnsafePointer<UInt8>, count: Int) {
        guard count > 0 else { return }
        var index = 0
        if pendingQuote {
            pendingQuote = false
            if bytes[0] == 0x22 { index = 1 } else { inQuotes = false }
        }
        while index < count, let found = memchr(bytes + index, 0x22, count - index) {
            let quote = UnsafePointer(found.assumingMemoryBound(to: UInt8.self)) - bytes
            if inQuotes {
                if quote + 1 == count {
                    pendingQuote = true
                } else if bytes[quote + 1] == 0x22 {
                    index = quote + 2  // escaped quote
                    continue
                } else {
                    inQuotes = false
                }
            } else {
                let before = quote > 0 ? bytes[quote - 1] : previous
                if before == 0x2C || before == 0x0A { inQuotes = true }
            }
            index = quote + 1
        }
        previous = bytes[count - 1]
    }

    /// Called at each newline: true when it ends the row, false inside a quoted field.
    mutating func newlineEndsRow() -> Bool {
        if pendingQuote {
            pendingQuote = false
            inQuotes = false
        }
        previous = 0x0A
        return !inQuotes
    }

    /// At end of input: true when a quoted field is still open.
    mutating func endsInsideQuotes() -> Bool {
        if pendingQuote {
            pendingQuote = false
            inQuotes = false
        }
        return inQuotes
    }
}
