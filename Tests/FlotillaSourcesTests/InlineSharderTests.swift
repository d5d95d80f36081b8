import FlotillaCore
import FlotillaSources
import Foundation
import Logging
import Testing

@Suite("InlineSharder")
struct InlineSharderTests {
    func samples(_ count: Int, textBytes: Int = 10) -> [InlineSample] {
        (0..<count).map { InlineSample(id: "i\($0)", input: .object(["text": .string(String(repeating: "a", count: textBytes))])) }
    }

    @Test("Cut by sample count; reading back gives every sample")
    func byCount() async throws {
        let input = samples(25)
        let shards = try InlineSharder.shard(samples: input, samplesPerShard: 10)
        #expect(shards.map(\.count) == [10, 10, 5])
        let reader = ShardReader(logger: Logger(label: "test"))
        var read: [Sample] = []
        for shard in shards { read += try await reader.read(.inline(shard)) }
        #expect(read.map(\.id) == input.map(\.id))
        #expect(read.map(\.value) == input.map(\.input))
    }

    @Test("Cut by encoded size: every shard's encoded samples fit the record limit")
    func bySize() throws {
        let input = samples(100, textBytes: 200)
        let limit = 2_000
        let shards = try InlineSharder.shard(samples: input, samplesPerShard: 1000, maxRecordBytes: limit)
        #expect(shards.count > 1)
        #expect(shards.flatMap { $0 } == input)
        for shard in shards {
            let size = try JSONEncoder().encode(shard).count
            #expect(size <= limit)
        }
        // Not cut earlier than needed: adding the next sample would have gone over.
        let first = try JSONEncoder().encode(shards[0] + [shards[1][0]]).count
        #expect(first > limit)
    }

    @Test("One sample over the limit is an error naming its id and sizes")
    func oversizeSample() throws {
        var input = samples(3)
        input[1] = InlineSample(id: "huge", input: .string(String(repeating: "x", count: 5_000)))
        let error = #expect(throws: FlotillaError.self) {
            try InlineSharder.shard(samples: input, samplesPerShard: 10, maxRecordBytes: 1_000)
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message.hasPrefix("inline sample 'huge' encodes to 50") == true)
        #expect(error?.message.contains("over the 1000-byte shard record limit") == true)
    }

    @Test("Duplicate ids are refused at sharding; a duplicated record read back marks the later one")
    func duplicates() async throws {
        var input = samples(4)
        input[3].id = "i1"
        let error = #expect(throws: FlotillaError.self) {
            try InlineSharder.shard(samples: input, samplesPerShard: 10)
        }
        #expect(error?.message == "inline samples 2 and 4 share the id 'i1'; sample ids must be unique")
        let read = try await ShardReader(logger: Logger(label: "test")).read(.inline(input))
        #expect(read.map(\.id) == ["i0", "i1", "i2", "inline:4"])
        #expect(read[3].errorMessage == "duplicate sample id 'i1' (first at inline:2)")
    }

    @Test("No samples, or bad limits, are errors")
    func badInput() throws {
        #expect(throws: FlotillaError.self) { try InlineSharder.shard(samples: [], samplesPerShard: 10) }
        let error = #expect(throws: FlotillaError.self) { try InlineSharder.shard(samples: samples(1), samplesPerShard: 0) }
        #expect(error?.code == .invalidConfiguration)
    }
}
