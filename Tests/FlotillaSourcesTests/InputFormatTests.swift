import FlotillaCore
@testable import FlotillaSources
import Foundation
import Logging
import Testing

/// Input files as people have them: a byte order mark, CSV fields spanning lines, CSV without an
/// `id` column, and inputs edited after submit.
@Suite("Input formats", .timeLimit(.minutes(1)))
struct InputFormatTests {
    let reader = ShardReader(logger: Logger(label: "test"))
    static let bom: [UInt8] = [0xEF, 0xBB, 0xBF]

    func readAll(_ ranges: [LineSource]) async throws -> [Sample] {
        var samples: [Sample] = []
        for range in ranges { samples += try await reader.read(.lines(range)) }
        return samples
    }

    /// Cuts `bytes` fed in chunks of `size` bytes.
    func cut(_ bytes: [UInt8], format: LineFormat, idField: IDField? = .standard, perShard: Int, chunk size: Int) throws -> ([ByteRange], [Int]) {
        var cutter = try LineCutter(source: "t", format: format, idField: idField, samplesPerShard: perShard, maxSampleBytes: 500)
        try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            var start = 0
            while start < raw.count {
                let end = min(start + size, raw.count)
                try cutter.consume(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                start = end
            }
        }
        return (try cutter.finish(), cutter.sampleCounts)
    }

    @Test("XXH64 matches the reference vectors, fed whole or in pieces")
    func xxh64Vectors() {
        func hash(_ text: String) -> String { Array(text.utf8).withUnsafeBytes { XXH64.checksum($0) } }
        #expect(hash("") == "xxh64:ef46db3751d8e999")
        #expect(hash("a") == "xxh64:d24ec4f1a98c6e5b")
        #expect(hash("abc") == "xxh64:44bc2cf5ad770999")
        #expect(hash("Nobody inspects the spammish repetition") == "xxh64:fbcea83c8a378bf1")
        let bytes = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 3) }
        let whole = bytes.withUnsafeBytes { XXH64.checksum($0) }
        for piece in [1, 5, 31, 32, 33, 100] {
            var hasher = XXH64()
            for start in stride(from: 0, to: bytes.count, by: piece) {
                hasher.update(Array(bytes[start..<min(start + piece, bytes.count)]))
            }
            #expect(hasher.checksum == whole)
        }
    }

    @Test("JSON lines with a byte order mark: the first line is a sample like the others")
    func bomJSONLines() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("bom.jsonl", Self.bom + Array("{\"id\":\"a\",\"x\":1}\n{\"id\":\"b\"}\n".utf8))
        let plan = try FileSharder.plan(path: path, format: .jsonl, idField: .standard, samplesPerShard: 10, maxSampleBytes: 100)
        #expect(plan.ranges.map(\.range.offset) == [3])
        #expect(plan.ranges[0].range.firstLine == 1)
        #expect(plan.bytes == 3 + 28)
        let samples = try await readAll(plan.ranges)
        #expect(samples.map(\.id) == ["a", "b"])
        #expect(samples.allSatisfy { $0.errorMessage == nil })
        #expect(samples[0].value == .object(["id": .string("a"), "x": .int(1)]))
    }

    @Test("CSV with a byte order mark: the id column is found and the first row is fine")
    func bomCSV() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("bom.csv", Self.bom + Array("id,text,n\r\nr1,hello,1\r\nr2,world,2\r\n".utf8))
        let plan = try FileSharder.plan(path: path, format: .csv, idField: "id", samplesPerShard: 1, maxSampleBytes: 100)
        #expect(plan.ranges.allSatisfy { $0.range.header == "id,text,n" && $0.range.idField == "id" })
        let samples = try await readAll(plan.ranges)
        #expect(samples.map(\.id) == ["r1", "r2"])
        #expect(samples[0].value == .object(["id": .string("r1"), "text": .string("hello"), "n": .string("1")]))
    }

    @Test("A byte order mark split over chunks is skipped; a lone EF is not one", arguments: [1, 2, 4])
    func bomChunked(chunk: Int) throws {
        let bytes = Self.bom + Array("{\"a\":1}\n{\"a\":2}\n".utf8)
        let (whole, _) = try cut(bytes, format: .jsonl, perShard: 1, chunk: bytes.count)
        let (chunked, _) = try cut(bytes, format: .jsonl, perShard: 1, chunk: chunk)
        #expect(chunked == whole)
        #expect(whole.map(\.offset) == [3, 11])
        // Not a mark: the bytes are scanned as data (here a line of invalid UTF-8).
        let notMark: [UInt8] = [0xEF, 0xBB, 0x0A] + Array("{}\n".utf8)
        let (ranges, counts) = try cut(notMark, format: .jsonl, perShard: 5, chunk: chunk)
        #expect(ranges.map(\.offset) == [0])
        #expect(counts == [2])
    }

    /// Rows 1–6; rows 2 and 4 have quoted fields spanning lines (one with CR LF inside), row 5 an
    /// escaped quote before a newline.
    static let multiLineCSV = "id,text\n"
        + "r1,plain\n"
        + "r2,\"two\nlines, one comma\"\n"
        + "r3,\"\"\n"
        + "r4,\"crlf\r\ninside\r\nthree\"\r\n"
        + "r5,\"say \"\"hi\"\"\n\"\n"
        + "\n"
        + "r6,last"

    @Test("CSV quoted fields spanning lines: shards cut between rows, ids and line numbers right")
    func quotedNewlines() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("multi.csv", Self.multiLineCSV)
        let plan = try FileSharder.plan(path: path, format: .csv, idField: .standard, samplesPerShard: 2, maxSampleBytes: 100)
        #expect(plan.sampleCounts == [2, 2, 2])
        #expect(plan.ranges.map(\.range.firstLine) == [2, 5, 9])
        let samples = try await readAll(plan.ranges)
        #expect(samples.map(\.id) == ["r1", "r2", "r3", "r4", "r5", "r6"])
        #expect(samples.allSatisfy { $0.errorMessage == nil })
        #expect(samples[1].value == .object(["id": .string("r2"), "text": .string("two\nlines, one comma")]))
        #expect(samples[3].value == .object(["id": .string("r4"), "text": .string("crlf\r\ninside\r\nthree")]))
        #expect(samples[4].value == .object(["id": .string("r5"), "text": .string("say \"hi\"\n")]))
        // Without ids, the fallback names the line each row starts on.
        let noIDs = try FileSharder.plan(path: path, format: .csv, samplesPerShard: 2, maxSampleBytes: 100)
        #expect(try await readAll(noIDs.ranges).map(\.id) == [2, 3, 5, 6, 9, 12].map { "\(path):\($0)" })
    }

    @Test("CSV quoted newlines: the same ranges and checksums whatever the chunking", arguments: [1, 2, 3, 7, 64])
    func quotedNewlinesChunked(chunk: Int) throws {
        var text = "id,\"a\nb\"\r\n"
        for index in 0..<60 {
            text += index % 7 == 0 ? "  \n" : ""
            text += index % 3 == 0 ? "k\(index),\"x\(index)\r\n\"\"y\"\",\n\"\n" : "k\(index),\"q\"\"\",\"\"\n"
        }
        let bytes = Self.bom + Array(text.utf8)
        let (whole, counts) = try cut(bytes, format: .csv, perShard: 4, chunk: bytes.count)
        let (chunked, chunkedCounts) = try cut(bytes, format: .csv, perShard: 4, chunk: chunk)
        #expect(chunked == whole)
        #expect(chunkedCounts == counts)
        #expect(counts.reduce(0, +) == 60)
        for range in whole {
            let slice = Array(bytes[Int(range.offset)..<Int(range.offset + range.length)])
            #expect(range.checksum == slice.withUnsafeBytes { XXH64.checksum($0) })
        }
    }

    @Test("An unterminated quote at the end of the input is one error sample naming its line")
    func unterminatedQuote() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("open.csv", "id,text\na,ok\nb,\"never closed\nc,lost\nd,lost too\n")
        let plan = try FileSharder.plan(path: path, format: .csv, idField: .standard, samplesPerShard: 1, maxSampleBytes: 100)
        #expect(plan.sampleCounts == [1, 1])
        let samples = try await readAll(plan.ranges)
        #expect(samples.map(\.id) == ["a", "\(path):3"])
        #expect(samples[1].errorMessage == "line 3: unterminated quoted field 2: no closing quote before the end of the input")
        // Over the sample limit, the open row is still one error sample.
        let small = try FileSharder.plan(path: path, format: .csv, samplesPerShard: 1, maxSampleBytes: 20)
        #expect(small.sampleCounts == [1, 1])
    }

    @Test("CSV without an id column: ids are <path>:<line>, unless the spec named the column")
    func idlessCSV() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("plain.csv", "text,n\nhello,1\n\nworld,2\n")
        let plan = try FileSharder.plan(path: path, format: .csv, idField: .standard, samplesPerShard: 10, maxSampleBytes: 100)
        #expect(plan.ranges[0].range.idField == nil)
        let samples = try await readAll(plan.ranges)
        #expect(samples.map(\.id) == ["\(path):2", "\(path):4"])
        #expect(samples[1].value == .object(["text": .string("world"), "n": .string("2")]))
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.plan(path: path, format: .csv, idField: .named("id"), samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message == "id column 'id' is not in the CSV header of \(path) (columns: text, n)")
    }

    @Test("An input edited after submit (same size) fails the read with the checksum")
    func checksumMismatch() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (text, _) = jsonLines(30)
        let path = try dir.write("edit.jsonl", text)
        let plan = try FileSharder.plan(path: path, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 1000)
        var bytes = Array(text.utf8)
        let target = plan.ranges[1].range
        let index = Int(target.offset) + 8
        bytes[index] = bytes[index] == 0x31 ? 0x32 : 0x31  // one byte, line boundaries unchanged
        try dir.write("edit.jsonl", bytes)
        _ = try await reader.read(.lines(plan.ranges[0]))  // other shards still read
        let error = await flotillaError { _ = try await reader.read(.lines(plan.ranges[1])) }
        let end = target.offset + target.length
        #expect(error?.code == .invalidInput)
        #expect(error?.message.hasPrefix("input changed since submit: \(path) bytes \(target.offset)..\(end) (checksum \(target.checksum ?? "")") == true)
        // Records written before checksums existed are read as before.
        var old = plan.ranges[1]
        old.range.checksum = nil
        #expect(try await reader.read(.lines(old)).count == 10)
    }

    @Test("A sample count other than the planned one fails the read")
    func sampleCountMismatch() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("count.jsonl", "{\"a\":1}\n{\"a\":2}\n")
        let plan = try FileSharder.plan(path: path, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
        #expect(try await reader.read(.lines(plan.ranges[0]), planned: 2).count == 2)
        #expect(try await reader.read(.lines(plan.ranges[0]), planned: nil).count == 2)
        let error = await flotillaError { _ = try await reader.read(.lines(plan.ranges[0]), planned: 3) }
        #expect(error?.message == "input changed since submit: planned 3 samples, read 2")
    }
}
