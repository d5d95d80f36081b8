import FlotillaCore
import Foundation
import Testing

@Suite("JSON scanner, writer and bytes")
struct JSONTests {
    /// The tree of `text`, or the scanner's message with its 1-based column.
    func parse(_ text: String) -> Result<JSONValue, SampleError> {
        var text = text
        return text.withUTF8 { buffer in
            var scanner = JSONScanner(buffer)
            guard let value = scanner.value(), scanner.expectEnd() else {
                return .failure(SampleError("\(scanner.failure ?? "?") at column \(scanner.index + 1)"))
            }
            return .success(value)
        }
    }

    func validate(_ text: String) -> Result<JSONBytes, JSONSyntaxError> {
        JSONBytes.validating(Array(text.utf8))
    }

    @Test("Values of every kind")
    func values() throws {
        let value = try parse(#" {"s":"a\"b\\c\/\n\u00e9\ud83d\ude00","i":-9223372036854775808,"big":18446744073709551616,"d":-1.5e3,"z":0,"t":true,"f":false,"n":null,"a":[1,[],{}],"u":"héllo"} "#).get()
        #expect(value == .object([
            "s": .string("a\"b\\c/\né😀"), "i": .int(.min), "big": .double(18446744073709551616), "d": .double(-1500),
            "z": .int(0), "t": .bool(true), "f": .bool(false), "n": .null,
            "a": .array([.int(1), .array([]), .object([:])]), "u": .string("héllo"),
        ]))
        #expect(try parse("9223372036854775807").get() == .int(.max))
        #expect(try parse("\"x\"").get() == .string("x"))
    }

    @Test("Malformed input is reported at its column, never crashes; validation agrees with parsing", arguments: [
        ("", "unexpected end of input at column 1"),
        ("{", "expected a string key at column 2"),
        ("{\"a\" 1}", "expected ':' at column 6"),
        ("[1 2]", "expected ',' or ']' at column 4"),
        ("[1,]", "unexpected character ']' at column 4"),
        ("[1,2,01]", "expected ',' or ']' at column 7"),
        ("[1,-]", "invalid number at column 5"),
        ("[1,2.5e,3]", "invalid number at column 8"),
        ("01", "unexpected data after the value at column 2"),
        ("-", "invalid number at column 2"),
        ("1.", "invalid number at column 3"),
        ("tru", "unexpected end of input at column 1"),
        ("nul1", "invalid literal at column 1"),
        ("\"a\tb\"", "control character in string at column 3"),
        ("\"\\x\"", "invalid escape '\\x' at column 3"),
        ("\"\\ud800\"", "lone surrogate in \\u escape at column 8"),
        ("\"abc", "unterminated string at column 5"),
        ("'a'", "unexpected character ''' at column 1"),
        ("NaN", "unexpected character 'N' at column 1"),
    ])
    func malformed(input: String, message: String) {
        #expect(parse(input) == .failure(SampleError(message)))
        guard case .failure(let error) = validate(input) else {
            Issue.record("validation accepted \(input)")
            return
        }
        #expect("\(error.message) at column \(error.offset + 1)" == message)
    }

    @Test("Digit runs read eight bytes at a time end at the first non-digit, whatever follows it and wherever the buffer ends")
    func digitRuns() {
        // Fractions and exponents of every length up to 20 digits, each followed by every kind of
        // byte the word scan must stop at (below "0", above "9", non-ASCII), and at the buffer's end.
        for digits in 1...20 {
            let run = String((0..<digits).map { Character(String($0 % 10)) })
            for number in ["0.\(run)", "-12.\(run)", "1e\(run)", "2.5E-\(run)"] {
                for valid in [number, "[\(number),\(number)]"] {
                    #expect((try? validate(valid).get()) != nil, "\(valid)")
                    #expect((try? parse(valid).get()) != nil, "\(valid)")
                }
                for follower in ["/", ":", "a", "é", " "] {
                    let text = "[\(number)\(follower)"
                    guard case .failure(let scanned) = validate(text), case .failure(let parsed) = parse(text) else {
                        Issue.record("accepted \(text)")
                        continue
                    }
                    #expect("\(scanned.message) at column \(scanned.offset + 1)" == parsed.message, "\(text)")
                }
            }
        }
    }

    @Test("Nesting deeper than the limit is refused instead of overflowing the stack")
    func depth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        guard case .failure(let error) = validate(deep) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.message.contains("nested deeper than 512 levels"))
        let ok = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect((try? parse(ok).get()) != nil)
        #expect((try? validate(ok).get()) != nil)
    }

    @Test("Validation keeps the value's own bytes, without the whitespace around it")
    func bytesAsWritten() throws {
        let bytes = try validate("  {\"b\": 1.50, \"a\":[ 1 ]}\r ").get()
        #expect(bytes.text == "{\"b\": 1.50, \"a\":[ 1 ]}")
        #expect(bytes.value == .object(["a": .array([.int(1)]), "b": .double(1.5)]))
        #expect(try validate("[0.5,-1,2E+3 ,4]").get().value == .array([.double(0.5), .int(-1), .double(2000), .int(4)]))
        #expect(validate("\"\u{FF}\"") != nil)
        #expect(JSONBytes.validating([0x22, 0xFF, 0x22]) == .failure(JSONSyntaxError(message: "invalid UTF-8", offset: 0)))
    }

    @Test("Values survive a write and parse round trip; keys are written sorted; NaN becomes a string")
    func roundTrip() throws {
        let value: JSONValue = .object([
            "id": .string("a\"b\\c\n\u{1}é😀\u{7F}"), "n": .int(-9_007_199_254_740_993), "x": .double(0.1),
            "big": .double(1e300), "list": .array([.null, .bool(true), .bool(false), .array([]), .object([:])]),
        ])
        let bytes = JSONBytes(value)
        #expect(bytes.value == value)
        #expect(try validate(bytes.text).get() == bytes)
        #expect(JSONBytes(.object(["b": .int(1), "a": .int(2)])).text == #"{"a":2,"b":1}"#)
        #expect(JSONBytes(.array([.double(.nan), .double(-.infinity), .double(.infinity)])).text == #"["NaN","-Infinity","Infinity"]"#)
        #expect(JSONBytes(.string("\u{8}\u{1F}")).text == #""\u0008\u001f""#)
    }

    @Test("Parses what JSONSerialization writes, escapes and surrogate pairs included")
    func foreignJSON() throws {
        let object: [String: Any] = ["s": "é😀/\t\"", "e": 1500.5, "i": 42, "l": [1, "x"]]
        let data = try JSONSerialization.data(withJSONObject: object)
        #expect(try validate(String(decoding: data, as: UTF8.self)).get().value == .object([
            "s": .string("é😀/\t\""), "e": .double(1500.5), "i": .int(42), "l": .array([.int(1), .string("x")]),
        ]))
    }

    @Test("Members are walked without decoding keys that hold no escapes")
    func members() {
        var text = #"{"id":"a","n\u0061me":"x","id":7}"#
        var seen: [String] = []
        let ok = text.withUTF8 { buffer in
            var scanner = JSONScanner(buffer)
            return scanner.forEachMember { scanner, key in
                seen.append(key.string + (key.matches("name") ? "=name" : "") + (key.matches("id") ? "=id" : ""))
                return scanner.skipValue()
            }
        }
        #expect(ok)
        #expect(seen == ["id=id", "name=name", "id=id"])
    }

    @Test("A JSONBytes goes through Codable as its value")
    func codable() throws {
        let bytes = JSONBytes(.object(["k": .array([.int(1), .string("v")])]))
        let data = try JSONEncoder().encode(bytes)
        #expect(try JSONDecoder().decode(JSONBytes.self, from: data) == bytes)
    }
}
