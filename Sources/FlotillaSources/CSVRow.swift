import FlotillaCore

/// Splits one CSV row into fields, following RFC 4180 quoting.
///
/// - A field in double quotes may hold commas and newlines (kept as written, `\r\n` included), and
///   a doubled quote (`""`) stands for one quote. ``CSVQuotes`` finds where such a row ends.
/// - A quote inside an unquoted field is kept as a literal character (lenient, as most writers
///   never produce it and most readers accept it).
/// - A quoted field still open at the end of the row can only be the input's last row: its
///   closing quote is missing, and the row is an error.
/// - Values stay strings: no number or boolean guessing, so `007` and `1e3` reach the model as
///   written.
enum CSVRow {
    /// Splits a line given as text (the header).
    static func split(_ line: String) -> Result<[String], SampleError> {
        var line = line
        return line.withUTF8 { split($0) }
    }

    /// Splits a row of valid UTF-8 without its final newline; a trailing carriage return is dropped.
    static func split(_ line: UnsafeBufferPointer<UInt8>) -> Result<[String], SampleError> {
        var fields: [String] = []
        var end = line.count
        // A carriage return before the newline belongs to the line ending, not to the last field.
        if end > 0 && line[end - 1] == 0x0D { end -= 1 }
        let utf8 = line
        var index = 0
        var field: [UInt8] = []
        while true {
            field.removeAll(keepingCapacity: true)
            if index < end && utf8[index] == 0x22 {
                // Quoted field.
                index += 1
                var closed = false
                while index < end {
                    let byte = utf8[index]
                    if byte == 0x22 {
                        if index + 1 < end && utf8[index + 1] == 0x22 {
                            field.append(0x22)
                            index += 2
                            continue
                        }
                        closed = true
                        index += 1
                        break
                    }
                    field.append(byte)
                    index += 1
                }
                guard closed else {
                    return .failure(SampleError(
                        "unterminated quoted field \(fields.count + 1): no closing quote before the end of the input"
                    ))
                }
                if index < end && utf8[index] != 0x2C {
                    return .failure(SampleError(
                        "unexpected character after the closing quote of field \(fields.count + 1)"
                    ))
                }
            } else {
                while index < end && utf8[index] != 0x2C {
                    field.append(utf8[index])
                    index += 1
                }
            }
            // Slices of valid UTF-8 cut at ASCII bytes are valid UTF-8.
            fields.append(String(decoding: field, as: UTF8.self))
            if index >= end { break }
            index += 1  // the comma
        }
        return .success(fields)
    }
}
