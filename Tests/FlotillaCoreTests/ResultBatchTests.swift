import Testing
@testable import FlotillaCore

@Suite("Result batches")
struct ResultBatchTests {
    private func result(_ id: String, _ outcome: ResultRecord.Outcome, stage: String? = nil) -> ResultRecord {
        ResultRecord(job: "j", id: id, shard: "s000004", attempt: 2, run: "r", outcome: outcome, stage: stage)
    }

    @Test("written JSON is the Codable form, sorted keys, and decodes to the same per-sample results")
    func writtenForm() throws {
        let batch = ResultBatch([result("a", .output(JSONBytes(.array([.int(1), .double(0.5)])))),
                                 result("b", .output(.null)),
                                 result("c\"q", .error("bad input"), stage: "classify")])
        #expect(text(codec.encode(batch)) == #"{"attempt":2,"job":"j","results":[{"id":"a","output":[1,0.5]},{"id":"b","output":null},{"error":"bad input","id":"c\"q","stage":"classify"}],"run":"r","shard":"s000004","v":1}"#)
        try roundTrip(batch)
        #expect(try codec.decodeResults(from: codec.encode(batch), type: "results") == batch.results)
        #expect(try codec.decodeResults(from: codec.encode(batch), type: nil) == batch.results)
    }

    @Test("a single result record from an older worker reads as one result")
    func singleRecords() throws {
        let single = result("a", .output(JSONBytes(.int(7))))
        #expect(try codec.decodeResults(from: codec.encode(single), type: "result") == [single])
        #expect(try codec.decodeResults(from: codec.encode(single), type: nil) == [single])
        #expect(throws: FlotillaError.self) { try codec.decodeResults(from: codec.encode(single), type: "ack") }
    }

    @Test("entries hold exactly one of output and error; an empty list or a bad shard id is refused")
    func refused() {
        #expect(decodeError(ResultBatch.self, #"{"v":1,"job":"j","shard":"s000000","attempt":0,"run":"r","results":[{"id":"a"}]}"#)?
            .contains("output") == true)
        #expect(decodeError(ResultBatch.self, #"{"v":1,"job":"j","shard":"s000000","attempt":0,"run":"r","results":[{"id":"a","output":1,"error":"x"}]}"#)?
            .contains("exactly one") == true)
        #expect(decodeError(ResultBatch.self, #"{"v":1,"job":"j","shard":"s000000","attempt":0,"run":"r","results":[]}"#)?
            .contains("empty") == true)
        #expect(decodeError(ResultBatch.self, #"{"v":1,"job":"j","shard":"../x","attempt":0,"run":"r","results":[{"id":"a","output":1}]}"#) != nil)
        // The same rules as entries, which read an empty list as a problem, not a crash.
        #expect(decodeError(ResultEntries.self, #"{"v":1,"job":"j","shard":"s000000","attempt":0,"run":"r","results":[]}"#)?
            .contains("empty") == true)
    }

    @Test("entries written as made are the batch's JSON, and read back as the same results")
    func entries() throws {
        let results = [result("a", .output(JSONBytes(.array([.int(1), .double(0.5)])))),
                       result("b", .output(.null)),
                       result("c\"q", .error("bad input"), stage: "classify")]
        var entries = ResultEntries(job: "j", shard: "s000004", attempt: 2, run: "r")
        entries.appendOutput(id: "a", JSONBytes(.array([.int(1), .double(0.5)])).bytes)
        entries.appendOutput(id: "b", JSONBytes.null.bytes)
        entries.appendOutput(id: "too big", JSONBytes(.string("x")).bytes)
        entries.removeLastOutput()
        entries.appendError(id: "c\"q", message: "bad input", stage: "classify")
        #expect(entries == ResultBatch(results).entries)
        #expect(entries.records == results)
        #expect(codec.encode(entries) == codec.encode(ResultBatch(results)))
        #expect(try codec.decodeResults(from: codec.encode(entries), type: "results") == results)
        #expect(entries.topErrors == [ErrorCount(message: "bad input", count: 1)])
        #expect(String(decoding: entries.entry(1), as: UTF8.self) == #"{"id":"b","output":null}"#)
        entries.removeAll()
        #expect(entries.isEmpty && entries.errors.isEmpty && entries.packed(maxMessageBytes: 1_000_000).isEmpty)
    }

    @Test("packing keeps every record under the limit, in order, and puts a large result alone")
    func packing() {
        let small = (0..<1_000).map { result("id-\($0)", .output(JSONBytes(trusted: Array(repeating: UInt8(ascii: "1"), count: 90)))) }
        let whole = ResultBatch(small).entries.packed(maxMessageBytes: 1_000_000)
        #expect(whole == [ResultBatch(small).entries])
        let limit = 20_000
        let cut = ResultBatch(small).entries.packed(maxMessageBytes: limit)
        #expect(cut.count > 5)
        #expect(cut.flatMap(\.records) == small)
        for batch in cut { #expect(codec.encode(batch).count + ResultBatch.framingBytes <= limit) }
        let big = result("big", .output(JSONBytes(trusted: Array(repeating: UInt8(ascii: "2"), count: 19_340))))  // alone just fits
        let failed = result("failed", .error("no"), stage: "s")
        let mixed = ResultBatch([small[0], big, failed, small[1]]).entries.packed(maxMessageBytes: limit)
        #expect(mixed.map { $0.records.map(\.id) } == [["id-0"], ["big"], ["failed", "id-1"]])
        #expect(mixed.map(\.errors) == [[], [], ["no"]])
        for batch in mixed { #expect(codec.encode(batch).count + ResultBatch.framingBytes <= limit) }
        #expect(ResultEntries(job: "j", shard: "s000004", attempt: 2, run: "r").packed(maxMessageBytes: limit).isEmpty)
    }
}
