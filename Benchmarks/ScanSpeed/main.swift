import FlotillaCore
import Foundation

// The input scan alone (`JSONScanner.skipValue`, what a worker runs on every line it reads), on
// lines like the fast model's: {"id":"f0000001","x":[64 floats]}, with the floats written two
// ways: "%.4f" (fixed length, as numpy's savetxt) and shortest round-trip (as Python's json.dumps).
// Prints the best of 15 passes over 20 000 lines per format; run by tools/bench/scan.

/// A fixed sequence (64-bit LCG), so every run scans the same bytes.
struct Sequence64 {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func next() -> Double {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Double(state >> 11) / Double(1 << 53) * 5 - 2.5
    }
}

func lines(format: (Double) -> String) -> [[UInt8]] {
    var sequence = Sequence64()
    return (0..<20_000).map { index in
        let values = (0..<64).map { _ in format(sequence.next()) }.joined(separator: ",")
        return Array("{\"id\":\"f\(String(format: "%07d", index))\",\"x\":[\(values)]}".utf8)
    }
}

func scan(_ name: String, _ lines: [[UInt8]]) {
    let bytes = lines.reduce(0) { $0 + $1.count }
    var best = UInt64.max
    for _ in 0..<15 {
        let start = DispatchTime.now().uptimeNanoseconds
        var valid = 0
        for line in lines {
            line.withUnsafeBufferPointer { buffer in
                var scanner = JSONScanner(buffer)
                if scanner.skipValue() && scanner.expectEnd() { valid += 1 }
            }
        }
        best = min(best, DispatchTime.now().uptimeNanoseconds - start)
        precondition(valid == lines.count, "the generated lines must be valid JSON")
    }
    let perLine = Double(best) / Double(lines.count)
    print(String(format: "scan %-9@ %5.0f ns per line, %.2f ns per byte (%d bytes per line)",
                 name, perLine, Double(best) / Double(bytes), bytes / lines.count))
}

scan("%.4f", lines { String(format: "%.4f", $0) })
scan("shortest", lines { "\($0)" })

// The records every worker and the controller read once per shard: the tree path
// (`TreeDecodedRecord`) against JSONDecoder alone.
func decode<T: FlotillaRecord>(_ name: String, _ record: T) {
    let bytes = RecordCodec.shared.encode(record)
    func best(_ body: () -> Void) -> Double {
        var best = UInt64.max
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<2_000 { body() }
            best = min(best, DispatchTime.now().uptimeNanoseconds - start)
        }
        return Double(best) / 2_000
    }
    let tree = best { _ = try! RecordCodec.shared.decode(T.self, from: bytes) }
    let data = Data(bytes)
    let reference = best { _ = try! RecordCodec.shared.decode(T.self, from: data) }
    print(String(format: "decode %-6@ %6.0f ns (JSONDecoder %6.0f ns), %d bytes", name, tree, reference, bytes.count))
}

decode("shard", ShardRecord(job: "bench-fast-model", shard: "s000042", attempt: 0, source: .lines(LineSource(
    location: .file(path: "/tmp/flotilla-bench.x/in.jsonl"),
    range: ByteRange(offset: 21_000_000, length: 503_000, firstLine: 42_001, format: .jsonl, idField: "id", checksum: "xxh64:0123456789abcdef"))),
    samples: 1000))
decode("ack", AckRecord(job: "bench-fast-model", shard: "s000042", attempt: 0, run: UUID().uuidString, worker: "w1", samples: 1000, startedAt: 1, finishedAt: 2))
