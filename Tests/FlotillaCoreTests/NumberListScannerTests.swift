@testable import FlotillaCore
import FlotillaTestSupport
import Testing

/// `NumberListScanner` against the byte-by-byte path it declines to: it must accept exactly what
/// that path accepts (ending at the same byte), or decline.
@Suite("Number lists, 64 bytes at a time")
struct NumberListScannerTests {
    /// (fast path's end, the byte-by-byte path's end or nil when it fails) for the list in
    /// `text` (which starts with `[`).
    func ends(_ text: String) -> (fast: Int?, reference: Int?) {
        Array(text.utf8).withUnsafeBufferPointer { buffer in
            var reference = JSONScanner(buffer)
            reference.index = 1
            reference.skipWhitespace()
            let referenceEnd = reference.skipItems() ? reference.index : nil
            var start = JSONScanner(buffer)
            start.index = 1
            start.skipWhitespace()
            return (NumberListScanner.end(of: buffer, from: start.index), referenceEnd)
        }
    }

    static func number(_ random: inout some RandomNumberGenerator) -> String {
        let value = Double.random(in: -3...3, using: &random)
        switch Int.random(in: 0..<6, using: &random) {
        case 0: return String(format4: value)
        case 1: return "\(value * [1, 1e-7, 1e12, 1e300].randomElement(using: &random)!)"  // exponents too
        case 2: return "\(Int.random(in: -100_000...100_000, using: &random))"
        case 3: return "\(Int.random(in: 0...9, using: &random))"
        case 4: return "\(Int.random(in: 1...9, using: &random))E+0\(Int.random(in: 0...9, using: &random))"
        default: return "-0.\(String(repeating: "0", count: Int.random(in: 0...20, using: &random)))1e-5"
        }
    }

    static func list(_ random: inout some RandomNumberGenerator, count: Int) -> String {
        let separator = Bool.random(using: &random) ? "," : ", "
        let padding = String(repeating: " ", count: Int.random(in: 0...3, using: &random))
        return "[" + padding + (0..<count).map { _ in number(&random) }.joined(separator: separator) + "]"
    }

    @Test("valid lists of 1 to 300 numbers, in every format and alignment, are taken by the fast path and end at their ']'")
    func validLists() {
        var random = SplitMix(seed: 7)
        for count in 1...300 {
            let text = Self.list(&random, count: count) + (Bool.random(using: &random) ? "" : ",\"tail\":1}")
            let (fast, reference) = ends(text)
            #expect(reference != nil, "\(text)")
            #expect(fast == reference, "\(text)")
        }
        // The ends of the buffer: the list closes in the last byte, or does not close at all.
        let exact = ends("[" + Array(repeating: "1.5", count: 40).joined(separator: ",") + "]")
        #expect(exact.fast != nil && exact.fast == exact.reference)
        #expect(ends("[" + Array(repeating: "1.5", count: 40).joined(separator: ",")) == (nil, nil))
    }

    @Test("mutated lists: the fast path accepts only what the byte-by-byte path accepts, ending at the same byte")
    func mutatedLists() {
        var random = SplitMix(seed: 11)
        let alphabet = Array("0123456789-+.eE, ]x\t\"é")
        var acceptedByBoth = 0
        var declined = 0
        for round in 0..<20_000 {
            var text = Array(Self.list(&random, count: Int.random(in: 1...40, using: &random)))
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let at = Int.random(in: 1..<text.count, using: &random)
                switch Int.random(in: 0..<3, using: &random) {
                case 0: text[at] = alphabet.randomElement(using: &random)!
                case 1: text.insert(alphabet.randomElement(using: &random)!, at: at)
                default: if text.count > 2 { text.remove(at: at) }
                }
            }
            let (fast, reference) = ends(String(text))
            if let fast {
                #expect(fast == reference, "round \(round): \(String(text))")
                acceptedByBoth += 1
            } else if reference != nil {
                declined += 1
            }
        }
        // Both outcomes are exercised: mutations that keep a list valid, and ones that break it.
        #expect(acceptedByBoth > 2_000)
        print("number lists: \(acceptedByBoth) accepted by both, \(declined) valid ones declined (tabs, spaces before commas)")
    }

    @Test("every rule, alone: the fast path declines what breaks it")
    func rules() {
        for invalid in ["[01]", "[-01]", "[1.]", "[.5]", "[1.2.3]", "[1e5.2]", "[1e5e3]", "[1e]", "[1e+]", "[+1]",
                        "[1-2]", "[--1]", "[-]", "[1,]", "[1, ]", "[,1]", "[1,,2]", "[1 2]", "[1.e5]", "[1E-]", "[0x1]"] {
            let (fast, reference) = ends(invalid)
            #expect(reference == nil, "\(invalid) is invalid")
            #expect(fast == nil, "\(invalid) declined")
        }
        for valid in ["[0]", "[-0]", "[0.5]", "[-0.0e-0]", "[1E+05]", "[10,20]", "[1, 2]", "[1,  2]", "[0e1]"] {
            let (fast, reference) = ends(valid)
            #expect(reference == valid.utf8.count && fast == reference, "\(valid)")
        }
        // Whitespace other than a space after a comma is left to the byte-by-byte path.
        #expect(ends("[1 , 2]") == (nil, 7))
        #expect(ends("[1,\t2]") == (nil, 6))
    }
}

private extension String {
    /// `%.4f` without Foundation.
    init(format4 value: Double) {
        let scaled = (abs(value) * 10_000).rounded()
        let whole = Int(scaled / 10_000)
        let fraction = Int(scaled.truncatingRemainder(dividingBy: 10_000))
        let digits = String(fraction)
        self = (value < 0 ? "-" : "") + "\(whole)." + String(repeating: "0", count: 4 - digits.count) + digits
    }
}
