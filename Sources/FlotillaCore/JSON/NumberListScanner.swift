#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// The commonest array of model inputs, a list of numbers (`[0.5,-1,2e3]`, or with a space after
/// each comma as `json.dumps` writes it), checked 64 bytes at a time instead of number by number.
///
/// Each byte is classified with SSE2 into bit masks (digit, sign, dot, exponent, comma, space),
/// and the number grammar becomes rules between neighbouring bits: a dot has a digit on each side,
/// a minus starts a number or follows an exponent, a number does not start with "0" and a digit…
/// At most one dot and one exponent per number, the dot first, are checked with the carry of an
/// addition, which runs from each mark to the end of its number. Rules between bytes and marks
/// carry over from one block to the next, so no byte is looked at twice.
///
/// It only ever says "valid, the array ends here", or declines: any other byte (a tab, a nested
/// value, a string, non-ASCII), whitespace anywhere but after a comma, and every error go back to
/// `JSONScanner`'s byte-by-byte path, which stays the reference for the rules and the messages.
/// The number scan was a sixth of a fast model's worker CPU; a whole 64-float line now scans in
/// half the time (`tools/bench/scan`).
enum NumberListScanner {
    /// Just past the `]` closing the list whose first element starts at `start` (after `[` and
    /// any whitespace), or nil to decline.
    static func end(of bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        #if arch(x86_64)
        // The rules judge what follows a number's first byte, not that there is one.
        guard let base = bytes.baseAddress, start < bytes.count, JSONScanner.startsNumber(bytes[start]) else { return nil }
        var carry = Carry()
        var at = start
        while true {
            let left = bytes.count - at
            let masks: Masks
            if left >= 64 {
                masks = Masks(UnsafeRawPointer(base + at))
            } else {
                // The last bytes, padded with zeros: a zero is no list byte, so it ends the block.
                masks = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 64) { block in
                    block.initialize(repeating: 0)
                    _ = UnsafeMutableBufferPointer(rebasing: block[..<left]).initialize(from: UnsafeBufferPointer(rebasing: bytes[at...]))
                    return Masks(UnsafeRawPointer(block.baseAddress!))
                }
            }
            switch carry.check(masks) {
            case .declined: return nil
            case .continues: at += 64
            case .closed(let offset): return at + offset + 1
            }
        }
        #else
        return nil
        #endif
    }

    /// What one block's check found.
    enum Step {
        case declined
        case continues
        /// The list's `]` is at this offset of the block.
        case closed(Int)
    }

    /// The classes of 64 bytes, one bit each (bit i: byte i).
    struct Masks {
        var digit: UInt64 = 0, zero: UInt64 = 0, minus: UInt64 = 0, plus: UInt64 = 0, dot: UInt64 = 0
        var exponent: UInt64 = 0, comma: UInt64 = 0, space: UInt64 = 0, close: UInt64 = 0

        #if arch(x86_64)
        init(_ block: UnsafeRawPointer) {
            for part in 0..<4 {
                let bytes = _mm_loadu_si128(block.advanced(by: 16 * part).assumingMemoryBound(to: __m128i.self))
                let shift = UInt64(16 * part)
                @inline(__always) func bits(_ mask: __m128i) -> UInt64 {
                    UInt64(UInt16(truncatingIfNeeded: _mm_movemask_epi8(mask))) << shift
                }
                @inline(__always) func equal(_ ascii: UInt8) -> UInt64 {
                    bits(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(Int8(bitPattern: ascii))))
                }
                // Unsigned "byte - 0x30 < 10" as a signed compare: both sides shifted by 0x80.
                let shifted = _mm_sub_epi8(bytes, _mm_set1_epi8(Int8(bitPattern: 0x30 &+ 0x80)))
                digit |= bits(_mm_cmplt_epi8(shifted, _mm_set1_epi8(Int8(bitPattern: 10 &+ 0x80))))
                zero |= equal(UInt8(ascii: "0"))
                minus |= equal(UInt8(ascii: "-"))
                plus |= equal(UInt8(ascii: "+"))
                dot |= equal(UInt8(ascii: "."))
                // "E" | 0x20 == "e", and no other byte becomes "e".
                exponent |= bits(_mm_cmpeq_epi8(_mm_or_si128(bytes, _mm_set1_epi8(0x20)), _mm_set1_epi8(Int8(bitPattern: UInt8(ascii: "e")))))
                comma |= equal(UInt8(ascii: ","))
                space |= equal(UInt8(ascii: " "))
                close |= equal(UInt8(ascii: "]"))
            }
        }
        #endif
    }

    /// The last bit of the previous block for each rule that looks one byte back, and the two
    /// mark spans still open at its end. Zero before the first block: the byte before the list is
    /// `[` or whitespace, neither of which a rule looks for.
    struct Carry {
        var number: UInt64 = 0, separator: UInt64 = 0, exponent: UInt64 = 0, sign: UInt64 = 0
        var digit: UInt64 = 0, dot: UInt64 = 0, minusStart: UInt64 = 0, zeroStart: UInt64 = 0
        var afterDot: UInt64 = 0, afterExponent: UInt64 = 0

        /// Checks one block against the rules and carries its last bits over to the next.
        mutating func check(_ m: Masks) -> Step {
            let number = m.digit | m.minus | m.plus | m.dot | m.exponent
            let separator = m.comma | m.space
            let other = ~(number | separator)
            // Bits up to the first other byte (the list's end, if it is a `]`) are judged.
            let end = other.trailingZeroBitCount
            let judged = end >= 63 ? UInt64.max : (1 << (end + 1)) &- 1
            @inline(__always) func previous(_ mask: UInt64, _ carried: UInt64) -> UInt64 { mask << 1 | carried }
            let afterNumber = previous(number, self.number)
            let afterSeparator = previous(separator, self.separator)
            let afterExponentMark = previous(m.exponent, self.exponent)
            let sign = m.minus | m.plus
            let afterDigit = previous(m.digit, self.digit)
            let afterDotMark = previous(m.dot, self.dot)
            let starts = number & ~afterNumber
            let minusStarts = starts & m.minus
            let integerStarts = (starts & m.digit) | previous(minusStarts, self.minusStart)
            let zeroStarts = integerStarts & m.zero
            // A comma before a comma, a space or the end, a number starting with anything but a
            // digit or "-", break one of these too.
            var bad = m.space & ~afterSeparator                 // a space only after a comma or a space
            bad |= afterSeparator & ~(number | m.space)          // then a number (or more spaces)
            bad |= m.minus & ~(starts | afterExponentMark)       // "-" starts it or follows "e"
            bad |= m.plus & ~afterExponentMark                   // "+" only after "e"
            bad |= previous(sign, self.sign) & ~m.digit          // a sign is followed by a digit
            bad |= (m.dot & ~afterDigit) | (afterDotMark & ~m.digit)  // a digit on each side of "."
            bad |= (m.exponent & ~afterDigit) | (afterExponentMark & ~(m.digit | sign))
            bad |= previous(zeroStarts, self.zeroStart) & m.digit     // no "01"
            // From each mark to the end of its number: adding a bit below a run of ones carries
            // through it. A second dot, a dot after "e" or a second "e" lands in a span.
            let (dots, dotsOut) = Self.spans(number, from: afterDotMark & number, carried: afterDot)
            let (exponents, exponentsOut) = Self.spans(number, from: afterExponentMark & number, carried: afterExponent)
            bad |= (m.dot & (dots | exponents)) | (m.exponent & exponents)
            guard bad & judged == 0 else { return .declined }
            if other != 0 {
                return (m.close >> UInt64(end)) & 1 == 1 ? .closed(end) : .declined
            }
            self.number = number >> 63
            self.separator = separator >> 63
            self.exponent = m.exponent >> 63
            self.sign = sign >> 63
            self.digit = m.digit >> 63
            self.dot = m.dot >> 63
            self.minusStart = minusStarts >> 63
            self.zeroStart = zeroStarts >> 63
            afterDot = dotsOut
            afterExponent = exponentsOut
            return .continues
        }

        /// The bits of `runs` from each bit of `marks` (and from bit 0 when `carried`) to the end
        /// of its run; and 1 when a span reaches past the last bit.
        @inline(__always)
        static func spans(_ runs: UInt64, from marks: UInt64, carried: UInt64) -> (UInt64, UInt64) {
            let (sum, overflow) = runs.addingReportingOverflow(marks)
            let (total, overflowAgain) = sum.addingReportingOverflow(carried)
            return ((total ^ runs) & runs, overflow || overflowAgain ? 1 : 0)
        }
    }
}
