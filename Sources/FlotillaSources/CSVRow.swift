import FlotillaCore

/// Splits one CSV line into fields, following RFC 4180 quoting.
///
/// - A field in double quotes may hold commas, and a doubled quote (`""`) stands for one quote.
/// - A quote inside an unquoted field is kept as a literal character (lenient, as most writers
///   never produce it and most readers accept it).
/// - A quoted field that spans lines is not supported: the sharder cuts on every newline, so the
///   line ends inside the quotes and the row is reported as an unterminated quoted field.
/// - Values stay strings: no number or boolean guessing, so `007` and `1e3` reach the model as
///   written.
enum CSVRow {
    /// Splits a line given as text (the header).
    static func split(_ line: String) -> Result<[String], SampleError> {
        var line = line
        return line.withUTF8 { split($0) }
    }

    /// Splits a line of valid UTF-8 without its newline; a trailing carriage return is dropped.
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
                        "unterminated quoted field \(fields.count + 1) (quoted fields spanning lines are not supported)"
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
