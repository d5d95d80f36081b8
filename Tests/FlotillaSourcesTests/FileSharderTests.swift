import FlotillaCore
@testable import FlotillaSources
import Foundation
import Logging
import Testing

@Suite("FileSharder", .timeLimit(.minutes(1)))
struct FileSharderTests {
    let reader = ShardReader(logger: Logger(label: "test"))

    /// Reads every shard and returns all samples in order.
    func readAll(_ ranges: [LineSource]) async throws -> [Sample] {
        var samples: [Sample] = []
        for range in ranges { samples += try await reader.read(.lines(range)) }
        return samples
    }

    /// Every range starts right after a newline (or at 0) and ends just after one (or at EOF).
    func expectOnLineBoundaries(_ ranges: [LineSource], in bytes: [UInt8]) {
        var previousEnd: Int64 = 0
        for range in ranges.map(\.range) {
            #expect(range.offset >= previousEnd)
            #expect(range.offset == 0 || bytes[Int(range.offset) - 1] == 0x0A)
            let end = Int(range.offset + range.length)
            #expect(end == bytes.count || bytes[end - 1] == 0x0A)
            previousEnd = range.offset + range.length
        }
    }

    @Test("JSON lines: shard then read back every sample, ids and inputs intact")
    func jsonLinesEndToEnd() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (text, values) = jsonLines(1037)
        let path = try dir.write("data.jsonl", text)
        let plan = try FileSharder.plan(path: path, format: .jsonl, idField: "id", samplesPerShard: 100, maxSampleBytes: 4096)
        #expect(plan.ranges.count == 11)
        #expect(plan.sampleCounts == Array(repeating: 100, count: 10) + [37])
        #expect(plan.samples == 1037)
        #expect(plan.bytes == Int64(text.utf8.count))
        let expectedFirstLines: [Int64] = (0..<11).map { Int64($0) * 100 + 1 }
        #expect(plan.ranges.map(\.range.firstLine) == expectedFirstLines)
        expectOnLineBoundaries(plan.ranges, in: Array(text.utf8))
        let samples = try await readAll(plan.ranges)
        #expect(samples.count == 1037)
        #expect(samples.map(\.id) == (0..<1037).map { "s\($0)" })
        #expect(samples.map(\.value) == values)
    }

    @Test("Without an id field, ids are <path>:<line>")
    func fallbackIDs() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("x.jsonl", "{\"a\":1}\n{\"a\":2}\n[3]\n")
        let ranges = try FileSharder.shard(path: path, format: .jsonl, samplesPerShard: 2, maxSampleBytes: 100)
        let samples = try await readAll(ranges)
        #expect(samples.map(\.id) == ["\(path):1", "\(path):2", "\(path):3"])
        #expect(samples[2].value == .array([.int(3)]))
    }

    @Test("Shard boundaries never split a line, whatever the chunking", arguments: [1, 2, 3, 7, 64])
    func boundariesUnderChunking(chunk: Int) throws {
        // Lines of varied length, blank lines, CRLF and no trailing newline, fed in tiny chunks.
        var text = ""
        for index in 0..<200 {
            text += index % 9 == 0 ? "  \r\n" : "{\"k\":\"\(String(repeating: "x", count: index % 37))\"}"
            text += index % 5 == 0 ? "\r\n" : "\n"
        }
        text += "{\"last\":true}"
        let bytes = Array(text.utf8)
        func cut(chunkSize: Int) throws -> ([ByteRange], [Int]) {
            var cutter = try LineCutter(source: "t", format: .jsonl, idField: nil, samplesPerShard: 13, maxSampleBytes: 200)
            try bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                var start = 0
                while start < raw.count {
                    let end = min(start + chunkSize, raw.count)
                    try cutter.consume(UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                    start = end
                }
            }
            return (try cutter.finish(), cutter.sampleCounts)
        }
        let (whole, wholeCounts) = try cut(chunkSize: bytes.count)
        let (chunked, chunkedCounts) = try cut(chunkSize: chunk)
        #expect(chunked == whole)
        #expect(chunkedCounts == wholeCounts)
        let blankLines = (0..<200).filter { $0 % 9 == 0 }.count
        #expect(wholeCounts.reduce(0, +) == 200 - blankLines + 1)
        expectOnLineBoundaries(whole.map { LineSource(location: .file(path: "t"), range: $0) }, in: bytes)
        // Each range holds exactly its counted samples.
        for (range, count) in zip(whole, wholeCounts) {
            let slice = bytes[Int(range.offset)..<Int(range.offset + range.length)]
            let lines = slice.split(separator: 0x0A).filter { !$0.allSatisfy(LineCutter.isBlankByte) }
            #expect(lines.count == count)
        }
    }

    @Test("CRLF line endings and a last line without a newline")
    func crlfAndNoTrailingNewline() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (text, values) = jsonLines(25, lineEnding: "\r\n")
        let path = try dir.write("crlf.jsonl", String(text.dropLast()))  // no final CRLF ("\r\n" is one Character)
        let ranges = try FileSharder.shard(path: path, format: .jsonl, idField: "id", samplesPerShard: 10, maxSampleBytes: 4096)
        #expect(ranges.count == 3)
        let samples = try await readAll(ranges)
        #expect(samples.map(\.value) == values)
        #expect(samples.last?.id == "s24")
    }

    @Test("Blank lines are not samples; line numbers still count them")
    func blankLines() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("blank.jsonl", "\n{\"a\":1}\n   \n\t\r\n{\"a\":2}\n\n\n{\"a\":3}\n\n")
        let plan = try FileSharder.plan(path: path, format: .jsonl, samplesPerShard: 2, maxSampleBytes: 100)
        #expect(plan.sampleCounts == [2, 1])
        #expect(plan.ranges.map(\.range.firstLine) == [2, 8])
        let samples = try await readAll(plan.ranges)
        #expect(samples.map(\.id) == ["\(path):2", "\(path):5", "\(path):8"])
    }

    @Test("CSV: the header is carried in every shard and is not a sample")
    func csvEndToEnd() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        var text = "id,name,note\r\n"
        for index in 0..<23 { text += "r\(index),\"Smith, J\(index)\",\"said \"\"hi\"\"\"\r\n" }
        let path = try dir.write("data.csv", text)
        let plan = try FileSharder.plan(path: path, format: .csv, idField: "id", samplesPerShard: 10, maxSampleBytes: 200)
        #expect(plan.sampleCounts == [10, 10, 3])
        #expect(plan.ranges.allSatisfy { $0.range.header == "id,name,note" })
        #expect(plan.ranges[0].range.firstLine == 2)
        let samples = try await readAll(plan.ranges)
        #expect(samples.count == 23)
        #expect(samples.map(\.id) == (0..<23).map { "r\($0)" })
        #expect(samples[4].value == .object(["id": .string("r4"), "name": .string("Smith, J4"), "note": .string("said \"hi\"")]))
    }

    @Test("CSV: an id column missing from the header is a configuration error")
    func csvMissingIDColumn() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("data.csv", "a,b\n1,2\n")
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: path, format: .csv, idField: "id", samplesPerShard: 10, maxSampleBytes: 200)
        }
        #expect(error?.code == .invalidConfiguration)
        #expect(error?.message.contains("id column 'id' is not in the CSV header of \(path)") == true)
    }

    @Test("A missing file is an error naming the path and the OS reason")
    func missingFile() throws {
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: "/nonexistent/data/x.jsonl", format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "cannot open input /nonexistent/data/x.jsonl: No such file or directory")
    }

    @Test("An unreadable file is an error naming the path and the OS reason")
    func unreadableFile() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        // As root chmod 000 does not stop reads, so use a path through a regular file instead:
        // open(2) fails with ENOTDIR, an OS refusal of the same kind. chmod 000 is checked too when not root.
        let file = try dir.write("plain", "x")
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: file + "/x.jsonl", format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(error?.message == "cannot open input \(file)/x.jsonl: Not a directory")
        if geteuid() != 0 {
            let locked = try dir.write("locked.jsonl", "{}\n")
            chmod(locked, 0)
            let denied = #expect(throws: FlotillaError.self) {
                try FileSharder.shard(path: locked, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
            }
            #expect(denied?.message == "cannot open input \(locked): Permission denied")
        }
    }

    @Test("A directory is refused with a clear error")
    func directory() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: dir.path, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(error?.message == "input \(dir.path) is a directory, expected a JSON-lines or CSV file")
    }

    @Test("An empty file, and a file of blank lines only, are errors")
    func emptyFile() throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let empty = try dir.write("data/x.jsonl", "")
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: empty, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(error?.message == "input \(empty) is empty")
        let blank = try dir.write("blank.jsonl", "\n \n\r\n")
        let blankError = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: blank, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(blankError?.message == "input \(blank) has no samples (only blank lines)")
        let headerOnly = try dir.write("h.csv", "a,b\n")
        let headerError = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: headerOnly, format: .csv, samplesPerShard: 10, maxSampleBytes: 100)
        }
        #expect(headerError?.message == "input \(headerOnly) has a CSV header but no rows")
    }

    @Test("A line longer than maxSampleBytes is a sample that reads as an error naming its line; a header or a giant row fails the plan")
    func overlongLine() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let line = "{\"t\":\"" + String(repeating: "y", count: 94) + "\"}"  // 102 bytes
        let path = try dir.write("long.jsonl", "{}\r\n{}\n" + line + "\n{}\n")
        let plan = try FileSharder.plan(path: path, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 101)
        #expect(plan.sampleCounts == [4])
        let samples = try await ShardReader(logger: Logger(label: "test"), maxSampleBytes: 101).read(.lines(plan.ranges[0]))
        #expect(samples.count == 4)
        #expect(samples[2].errorMessage == "line 3 is 102 bytes, over the 101-byte sample limit (shard.maxSampleBytes)")
        let header = try dir.write("wide.csv", String(repeating: "c", count: 200) + "\n1\n")
        let headerError = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: header, format: .csv, samplesPerShard: 10, maxSampleBytes: 101)
        }
        #expect(headerError?.message == "input \(header) line 1 is longer than the 101-byte sample limit")
        // Exactly at the limit, with CRLF, is fine.
        let exact = try dir.write("exact.jsonl", line + "\r\n" + line)
        let ranges = try FileSharder.shard(path: exact, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 102)
        #expect(ranges.count == 1)
    }

    @Test("Bad parameters are configuration errors")
    func badParameters() throws {
        let error = #expect(throws: FlotillaError.self) {
            try FileSharder.shard(path: "/tmp/x", format: .jsonl, samplesPerShard: 0, maxSampleBytes: 100)
        }
        #expect(error?.code == .invalidConfiguration)
    }

    @Test("planInBackground gives the same plan")
    func background() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write("d.jsonl", jsonLines(50).text)
        let direct = try FileSharder.plan(path: path, format: .jsonl, samplesPerShard: 7, maxSampleBytes: 4096)
        let background = try await FileSharder.planInBackground(path: path, format: .jsonl, samplesPerShard: 7, maxSampleBytes: 4096)
        #expect(direct == background)
    }
}
