import FlotillaCore
@testable import FlotillaSources
import Foundation
import Logging
import Testing

@Suite("ShardReader on files", .timeLimit(.minutes(1)))
struct ShardReaderTests {
    let reader = ShardReader(logger: Logger(label: "test"))

    /// Shards `bytes` written to `name` into one shard and reads it back.
    func readOne(
        _ name: String, _ bytes: [UInt8], format: LineFormat = .jsonl, idField: IDField? = nil
    ) async throws -> (path: String, samples: [Sample]) {
        let dir = try TempDir()
        defer { dir.remove() }
        let path = try dir.write(name, bytes)
        let ranges = try FileSharder.shard(path: path, format: format, idField: idField, samplesPerShard: 1000, maxSampleBytes: 1000)
        #expect(ranges.count == 1)
        return (path, try await reader.read(.lines(ranges[0])))
    }

    @Test("An invalid UTF-8 line becomes an error sample; the others are read")
    func invalidUTF8() async throws {
        let bytes = Array("{\"a\":1}\n{\"a\":\"".utf8) + [0xC3, 0x28] + Array("\"}\n{\"a\":3}\n".utf8)
        let (path, samples) = try await readOne("u.jsonl", bytes)
        #expect(samples.count == 3)
        #expect(samples[1].id == "\(path):2")
        #expect(samples[1].errorMessage == "line 2: invalid UTF-8")
        #expect(samples[0].value == .object(["a": .int(1)]))
        #expect(samples[2].value == .object(["a": .int(3)]))
    }

    @Test("A malformed JSON line becomes an error sample naming the line and column")
    func malformedJSON() async throws {
        let (path, samples) = try await readOne("m.jsonl", Array("{\"a\":1}\n{\"a\":1,}\n{\"b\":2} x\n{\"c\":[]}\n".utf8))
        #expect(samples.count == 4)
        #expect(samples[1].id == "\(path):2")
        #expect(samples[1].errorMessage == "line 2: malformed JSON: expected a string key at column 8")
        #expect(samples[2].errorMessage == "line 3: malformed JSON: unexpected data after the value at column 9")
        #expect(samples[3].value == .object(["c": .array([])]))
    }

    @Test("A ragged CSV row becomes an error sample naming the line and the counts")
    func raggedCSV() async throws {
        let text = "id,a,b\n1,x,y\n2,x\n3,x,y,z\n5,\"q\"z,y\n6,,\n7,\"unterminated,y\n"
        let (path, samples) = try await readOne("r.csv", Array(text.utf8), format: .csv, idField: "id")
        #expect(samples.count == 6)
        #expect(samples[0].id == "1")
        #expect(samples[1].id == "\(path):3")
        #expect(samples[1].errorMessage == "line 3: row has 2 fields, the header has 3")
        #expect(samples[2].errorMessage == "line 4: row has 4 fields, the header has 3")
        #expect(samples[3].errorMessage == "line 5: unexpected character after the closing quote of field 2")
        #expect(samples[4].value == .object(["id": .string("6"), "a": .string(""), "b": .string("")]))
        // A quote still open at the end of the input: one error for the row, named by its line.
        #expect(samples[5].id == "\(path):7")
        #expect(samples[5].errorMessage == "line 7: unterminated quoted field 2: no closing quote before the end of the input")
    }

    @Test("Duplicate ids: later ones become errors naming the first line, with their own <path>:<line> id")
    func duplicateIDs() async throws {
        let text = "{\"id\":\"a\",\"v\":1}\n{\"id\":\"b\"}\n{\"id\":\"a\",\"v\":2}\n{\"id\":7}\n{\"id\":\"7\"}\n"
        let (path, samples) = try await readOne("d.jsonl", Array(text.utf8), idField: "id")
        #expect(samples.map(\.id) == ["a", "b", "\(path):3", "7", "\(path):5"])
        #expect(samples[0].value == .object(["id": .string("a"), "v": .int(1)]))
        #expect(samples[2].errorMessage == "duplicate sample id 'a' (first at \(path):1)")
        #expect(samples[4].errorMessage == "duplicate sample id '7' (first at \(path):4)")
    }

    @Test("Duplicate ids are found whether the ids before them were in order or not")
    func duplicateIDsAfterOrder() async throws {
        // b c d ascend (no table yet); a is out of order (the table is built); c repeats line 2; e f ascend again; d repeats line 3.
        let ids = ["b", "c", "d", "a", "c", "e", "f", "d"]
        let text = ids.map { "{\"id\":\"\($0)\"}\n" }.joined()
        let (path, samples) = try await readOne("o.jsonl", Array(text.utf8), idField: "id")
        #expect(samples.map(\.id) == ["b", "c", "d", "a", "\(path):5", "e", "f", "\(path):8"])
        #expect(samples[4].errorMessage == "duplicate sample id 'c' (first at \(path):2)")
        #expect(samples[7].errorMessage == "duplicate sample id 'd' (first at \(path):3)")
        // In order throughout, a repeat is the first id not after the one before it.
        let (_, repeated) = try await readOne("r.jsonl", Array("{\"id\":\"x1\"}\n{\"id\":\"x2\"}\n{\"id\":\"x2\"}\n".utf8), idField: "id")
        #expect(repeated[2].errorMessage?.hasPrefix("duplicate sample id 'x2'") == true)
    }

    @Test("Id field of the wrong type is an error sample; null or absent falls back to <path>:<line>")
    func idFieldTypes() async throws {
        let text = "{\"id\":1.5}\n{\"id\":null}\n{}\n{\"id\":-3}\n"
        let (path, samples) = try await readOne("t.jsonl", Array(text.utf8), idField: "id")
        #expect(samples.map(\.id) == ["\(path):1", "\(path):2", "\(path):3", "-3"])
        #expect(samples[0].errorMessage == "line 1: id field 'id' must be a string or an integer, got a number with a fraction or exponent")
        #expect(samples[1].errorMessage == nil)
    }

    @Test("A file that shrank since sharding is a thrown error naming the file")
    func fileChanged() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let (text, _) = jsonLines(30)
        let path = try dir.write("c.jsonl", text)
        let ranges = try FileSharder.shard(path: path, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 1000)
        try dir.write("c.jsonl", String(text.prefix(text.utf8.count / 2)))
        let error = await flotillaError { _ = try await reader.read(.lines(ranges[2])) }
        #expect(error?.code == .invalidInput)
        #expect(error?.message.hasPrefix("input changed since submit: \(path) bytes ") == true)
        #expect(error?.message.contains("the shard ends at byte") == true)
        // Same size, every line shifted one byte: the range no longer starts a line.
        try dir.write("c.jsonl", String(text.dropFirst()) + " ")
        let shifted = await flotillaError { _ = try await reader.read(.lines(ranges[1])) }
        #expect(shifted?.message.hasPrefix("input changed since submit: \(path)") == true)
    }

    @Test("Reading a missing file throws naming it")
    func missingAtRead() async throws {
        let range = LineSource(location: .file(path: "/nonexistent/y.jsonl"), range: ByteRange(offset: 0, length: 10, firstLine: 1, format: .jsonl))
        let error = await flotillaError { _ = try await reader.read(.lines(range)) }
        #expect(error?.message == "cannot open input /nonexistent/y.jsonl: No such file or directory")
    }
}
