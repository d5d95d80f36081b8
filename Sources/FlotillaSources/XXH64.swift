/// The 64-bit xxHash (XXH64, seed 0) of a byte stream fed in pieces of any size.
///
/// Used for the checksum of each shard's byte range, recorded at submit and checked by the reader
/// (``ShardReader``): fast enough to run inside the sharder's scan, and a published algorithm, so
/// a checksum can be checked with `xxhsum -H1`. Not a cryptographic hash: it detects edits, not
/// forgeries.
struct XXH64 {
    private static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    private var lane1 = prime1 &+ prime2
    private var lane2 = prime2
    private var lane3: UInt64 = 0
    private var lane4: UInt64 = 0 &- prime1
    private var total: UInt64 = 0
    /// Bytes waiting for a full 32-byte stripe, little-endian words as in the reference.
    private var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var buffered = 0

    init() {}

    /// The checksum of `bytes` as written in shard records: `xxh64:<16 hex digits>`.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> String {
        var hasher = XXH64()
        hasher.update(bytes)
        return hasher.checksum
    }

    /// `xxh64:` and the digest in 16 lowercase hex digits.
    var checksum: String {
        let hex = String(digest, radix: 16)
        return "xxh64:" + String(repeating: "0", count: 16 - hex.count) + hex
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var pointer = base
        var count = bytes.count
        total &+= UInt64(count)
        if buffered > 0 {
            let take = min(32 - buffered, count)
            withUnsafeMutableBytes(of: &buffer) { stripe in
                stripe.baseAddress!.advanced(by: buffered).copyMemory(from: pointer, byteCount: take)
            }
            buffered += take
            pointer += take
            count -= take
            guard buffered == 32 else { return }
            let stripe = buffer
            round(UInt64(littleEndian: stripe.0), UInt64(littleEndian: stripe.1),
                  UInt64(littleEndian: stripe.2), UInt64(littleEndian: stripe.3))
            buffered = 0
        }
        // The hot loop: four independent lanes, so the multiplies overlap.
        var (v1, v2, v3, v4) = (lane1, lane2, lane3, lane4)
        while count >= 32 {
            v1 = Self.round(v1, Self.word(pointer, 0))
            v2 = Self.round(v2, Self.word(pointer, 8))
            v3 = Self.round(v3, Self.word(pointer, 16))
            v4 = Self.round(v4, Self.word(pointer, 24))
            pointer += 32
            count -= 32
        }
        (lane1, lane2, lane3, lane4) = (v1, v2, v3, v4)
        if count > 0 {
            withUnsafeMutableBytes(of: &buffer) { stripe in
                stripe.baseAddress!.copyMemory(from: pointer, byteCount: count)
            }
            buffered = count
        }
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The hash of every byte given so far (the state is not changed).
    var digest: UInt64 {
        var hash: UInt64
        if total >= 32 {
            hash = rotl(lane1, 1) &+ rotl(lane2, 7) &+ rotl(lane3, 12) &+ rotl(lane4, 18)
            hash = Self.merge(hash, lane1)
            hash = Self.merge(hash, lane2)
            hash = Self.merge(hash, lane3)
            hash = Self.merge(hash, lane4)
        } else {
            hash = lane3 &+ Self.prime5
        }
        hash &+= total
        var tail = buffer
        withUnsafeBytes(of: &tail) { raw in
            var index = 0
            while index + 8 <= buffered {
                hash ^= Self.round(0, Self.word(raw.baseAddress!, index))
                hash = rotl(hash, 27) &* Self.prime1 &+ Self.prime4
                index += 8
            }
            if index + 4 <= buffered {
                let word = UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt32.self)))
                hash ^= word &* Self.prime1
                hash = rotl(hash, 23) &* Self.prime2 &+ Self.prime3
                index += 4
            }
            while index < buffered {
                hash ^= UInt64(raw[index]) &* Self.prime5
                hash = rotl(hash, 11) &* Self.prime1
                index += 1
            }
        }
        hash ^= hash >> 33
        hash &*= Self.prime2
        hash ^= hash >> 29
        hash &*= Self.prime3
        hash ^= hash >> 32
        return hash
    }

    private mutating func round(_ w1: UInt64, _ w2: UInt64, _ w3: UInt64, _ w4: UInt64) {
        lane1 = Self.round(lane1, w1)
        lane2 = Self.round(lane2, w2)
        lane3 = Self.round(lane3, w3)
        lane4 = Self.round(lane4, w4)
    }

    @inline(__always)
    private static func word(_ pointer: UnsafeRawPointer, _ offset: Int) -> UInt64 {
        UInt64(littleEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inline(__always)
    private static func round(_ lane: UInt64, _ input: UInt64) -> UInt64 {
        rotl(lane &+ input &* prime2, 31) &* prime1
    }

    @inline(__always)
    private static func merge(_ hash: UInt64, _ lane: UInt64) -> UInt64 {
        (hash ^ round(0, lane)) &* prime1 &+ prime4
    }
}

@inline(__always)
private func rotl(_ value: UInt64, _ bits: UInt64) -> UInt64 {
    (value << bits) | (value >> (64 - bits))
}
