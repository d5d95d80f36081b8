@testable import FlotillaCore
import Testing

/// `UTF8Validation` against the standard library's validation, with the odd byte at every position
/// of the word-at-a-time paths.
@Suite("UTF-8 validation")
struct UTF8ValidationTests {
    func valid(_ bytes: [UInt8]) -> Bool { bytes.withUnsafeBufferPointer { UTF8Validation.isValid($0) } }

    @Test("a bad byte or a multi-byte character anywhere in 0 to 100 ASCII bytes is judged as the standard library judges it")
    func everyPosition() {
        for length in 0...100 {
            let ascii = [UInt8](repeating: UInt8(ascii: "a"), count: length)
            #expect(valid(ascii))
            for position in 0..<length {
                var bad = ascii
                bad[position] = 0xFF
                #expect(!valid(bad), "0xFF at \(position) of \(length)")
                var accented = ascii
                accented.replaceSubrange(position..<position + 1, with: Array("é".utf8))
                #expect(valid(accented), "é at \(position) of \(length)")
                #expect(!valid(Array(accented.dropLast(accented.count - position - 1))), "a cut é at \(position)")
            }
        }
    }
}
