import Foundation
import Testing
@testable import FlotillaCore

@Suite("Shard and ack records read from a tree give what JSONDecoder gives, or leave the record to it")
struct TreeDecodedRecordTests {
    /// What JSONDecoder alone makes of `bytes` (the reference).
    func referenceDecoded<T: FlotillaRecord>(_ type: T.Type, _ bytes: [UInt8]) throws -> T {
        try codec.decode(type, from: Data(bytes))
    }

    static let ranges = [
        ByteRange(offset: 0, length: 10, firstLine: 1, format: .jsonl),
        ByteRange(offset: 1 << 40, length: 99, firstLine: 7, format: .csv, header: "id,\"x\"", idField: "id", checksum: "xxh64:00ff00ff00ff00ff"),
    ]

    @Test("Shard records of files and URLs, with and without counts, optional fields and escapes")
    func shardRecords() throws {
        for range in Self.ranges {
            for location in [LineSource.Location.file(path: "/data/a \"b\".jsonl"), .url("https://example.invalid/x?a=1")] {
                for samples in [nil, 0, 1000] {
                    let record = ShardRecord(job: "job-ü", shard: "s000042", attempt: 3, source: .lines(LineSource(location: location, range: range)),
                                             samples: samples, reason: .workerLost, createdAt: 1_700_000_000_123)
                    let bytes = codec.encode(record)
                    #expect(RecordCodec.treeDecoded(ShardRecord.self, from: bytes) == record)
                    #expect(try referenceDecoded(ShardRecord.self, bytes) == record)
                    #expect(try codec.decode(ShardRecord.self, from: bytes) == record)
                }
            }
        }
    }

    @Test("Acks done and failed, with and without an error")
    func acks() throws {
        for (status, error) in [(AckStatus.done, nil), (.failed, "predictor 'a' exited\n(code 1)")] {
            let ack = AckRecord(job: "j", shard: "s000001", attempt: 0, run: UUID().uuidString, worker: "w-1", samples: 10,
                                errorSamples: 2, status: status, error: error, startedAt: 5, finishedAt: 9)
            let bytes = codec.encode(ack)
            #expect(RecordCodec.treeDecoded(AckRecord.self, from: bytes) == ack)
            #expect(try codec.decode(AckRecord.self, from: bytes) == ack)
        }
    }

    @Test("An ack written without JSONEncoder is the object JSONEncoder writes, keys sorted")
    func writtenAcks() throws {
        let sorted = JSONEncoder()
        sorted.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for ack in [
            AckRecord(job: "j/ü", shard: "s000001", attempt: 2, run: "r", worker: "w\"1", samples: 10, startedAt: 5, finishedAt: -9),
            AckRecord(job: "j", shard: "s000001", attempt: 0, run: "r", worker: "w", samples: 3, errorSamples: 3, status: .failed,
                      error: "predictor\nexited", errors: [ErrorCount(message: "bad \u{1}", count: 2), ErrorCount(message: "worse", count: 1)],
                      startedAt: 1, finishedAt: 2),
        ] {
            let written = text(codec.encode(ack))
            var reference = text(Array(try sorted.encode(ack)))
            reference.insert(contentsOf: ",\"v\":1", at: reference.range(of: ",\"worker\"")!.lowerBound)
            #expect(written == reference)
            #expect(try codec.decode(AckRecord.self, from: codec.encode(ack)) == ack)
        }
    }

    @Test("What the tree path does not cover goes to JSONDecoder: the same record, or the same error")
    func declined() throws {
        let withCounts = AckRecord(job: "j", shard: "s000001", attempt: 0, run: "r", worker: "w", samples: 3, errorSamples: 3,
                                   errors: [ErrorCount(message: "bad", count: 3)], startedAt: 1, finishedAt: 2)
        let inline = ShardRecord(job: "j", shard: "s000002", source: .inline([InlineSample(id: "a", input: .int(1))]), samples: 1)
        #expect(RecordCodec.treeDecoded(AckRecord.self, from: codec.encode(withCounts)) == nil)
        #expect(try codec.decode(AckRecord.self, from: codec.encode(withCounts)) == withCounts)
        #expect(RecordCodec.treeDecoded(ShardRecord.self, from: codec.encode(inline)) == nil)
        #expect(try codec.decode(ShardRecord.self, from: codec.encode(inline)) == inline)

        let ack = text(codec.encode(AckRecord(job: "j", shard: "s000001", attempt: 0, run: "r", worker: "w", samples: 3, startedAt: 1, finishedAt: 2)))
        for variant in [
            ack.replacingOccurrences(of: "\"v\":1", with: "\"v\":2"),                  // another version
            ack.replacingOccurrences(of: "\"samples\":3", with: "\"samples\":3.0"),    // a number JSONDecoder judges
            ack.replacingOccurrences(of: "\"status\":\"done\"", with: "\"status\":\"odd\""),  // an unknown status
            ack.replacingOccurrences(of: "\"shard\":\"s000001\"", with: "\"shard\":\"x\""),   // a record with a problem
            ack.replacingOccurrences(of: ",\"worker\":\"w\"", with: ""),                // a missing field
            String(ack.dropLast()),                                                    // not JSON
        ] {
            let bytes = Array(variant.utf8)
            #expect(RecordCodec.treeDecoded(AckRecord.self, from: bytes) == nil, "\(variant)")
            let fast = String(describing: Result { try codec.decode(AckRecord.self, from: bytes) })
            let reference = String(describing: Result { try referenceDecoded(AckRecord.self, bytes) })
            #expect(fast == reference, "\(variant)")
        }
    }
}
