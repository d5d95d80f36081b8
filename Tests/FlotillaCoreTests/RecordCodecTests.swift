import Foundation
import Testing
@testable import FlotillaCore

let codec = RecordCodec.shared

func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

func roundTrip<T: FlotillaRecord & Equatable>(_ record: T, sourceLocation: SourceLocation = #_sourceLocation) throws {
    let bytes = codec.encode(record)
    #expect(text(bytes).hasPrefix("{"), sourceLocation: sourceLocation)
    #expect(text(bytes).contains("\"v\":1"), sourceLocation: sourceLocation)
    #expect(try codec.decode(T.self, from: bytes) == record, sourceLocation: sourceLocation)
}

/// The `.codec` error message decoding `json` as `T` fails with.
func decodeError<T: FlotillaRecord>(_ type: T.Type, _ json: String) -> String? {
    do {
        _ = try codec.decode(type, from: Array(json.utf8))
        Issue.record("expected \(json) to be refused")
        return nil
    } catch {
        #expect(error.code == .codec)
        return error.message
    }
}

let sampleConfig = JobConfig(
    job: "j1",
    inputs: [.lines(LinesInput(.file(path: "/d/a.jsonl"), format: .jsonl)), .inline([InlineSample(id: "x", input: .int(1))])],
    stages: [StageConfig(name: "s", predictor: .command(["/bin/p", "-x"]), timeout: .milliseconds(1500))],
    baseDirectory: "/d")

@Suite("Records and codec")
struct RecordCodecTests {
    @Test("every record type survives a round trip")
    func roundTrips() throws {
        let range = ByteRange(offset: 10, length: 200, firstLine: 2, format: .csv, header: "id,x", idField: "id")
        try roundTrip(ShardRecord(job: "j1", shard: "s000001", attempt: 2, source: .lines(LineSource(location: .file(path: "/d/a.csv"), range: range)),
                                  samples: 5, reason: .workerLost, createdAt: 1_700_000_000_000))
        try roundTrip(ShardRecord(job: "j1", shard: "s000002", source: .lines(LineSource(location: .url("http://h/a.jsonl"), range: range)),
                                  reason: ShardReason("something-new"), createdAt: 1))
        var checked = range
        checked.checksum = "xxh64:0123456789abcdef"  // optional: records without it decode as nil
        try roundTrip(ShardRecord(job: "j1", shard: "s000004", source: .lines(LineSource(location: .file(path: "/d/a.csv"), range: checked)), createdAt: 3))
        try roundTrip(ShardRecord(job: "j1", shard: "s000003", source: .inline([
            InlineSample(id: "a", input: .object(["n": .null, "l": .array([.bool(true), .double(2.5), .string("é\n\"")])])),
        ]), samples: 1, createdAt: 2))
        try roundTrip(AckRecord(job: "j1", shard: "s000001", attempt: 1, run: UUID().uuidString, worker: "w-1", samples: 100,
                                errorSamples: 3, startedAt: 5, finishedAt: 9))
        try roundTrip(AckRecord(job: "j1", shard: "s000001", attempt: 0, run: "r", worker: "w", samples: 0,
                                status: .failed, error: "predictor exited with status 1", startedAt: 5, finishedAt: 9))
        try roundTrip(HeartbeatRecord(
            job: "j1", worker: "w-1", host: "node-a", pid: 4242, time: 77, state: .draining,
            inFlight: [InFlightShard(shard: "s000004", attempt: 0, run: "r1", done: 10, total: 100, startedAt: 70),
                       InFlightShard(shard: "s000005", attempt: 1, run: "r2", startedAt: 71)],
            queued: ["s000006"], samplesPerSecond: 123.5,
            predictors: [PredictorStatus(stage: "classify", processes: 2, busy: 1, restarts: 3)], partitions: [0, 7]))
        try roundTrip(HeartbeatRecord(job: "j1", worker: "w-2", host: "h", pid: 1, time: 1))
        try roundTrip(ResultRecord(job: "j1", id: "a", shard: "s000001", attempt: 0, run: "r", outcome: .output(JSONBytes(.object(["label": .int(3)])))))
        try roundTrip(ResultRecord(job: "j1", id: "b", shard: "s000001", attempt: 0, run: "r", outcome: .output(.null)))
        try roundTrip(ResultRecord(job: "j1", id: "c", shard: "s000001", attempt: 0, run: "r", outcome: .error("bad input"), stage: "classify"))
        try roundTrip(ControlRecord(job: "j1", target: "*", command: .cancel, reason: "cancelled by user", time: 3))
        try roundTrip(ControlRecord(job: "j1", target: "w-2", command: .supersede, shard: "s000009", attempt: 2, time: 4))
        try roundTrip(ControlRecord(job: "j1", target: "controller", command: .scale, workers: 3, time: 4))
        try roundTrip(ControlRecord(job: "j1", target: "*", command: .settle, reason: "the acks topic is held", time: 5))
        try roundTrip(SettleRecord(job: "j1", worker: "w-2", reason: "idle", time: 6))
        try roundTrip(DeadLetterRecord(job: "j1", shard: "s000001", attempt: 2, reason: "failed 3 attempts", raw: Array("{\"a\":1}".utf8),
                                       topic: "flotilla.j1.shards", partition: 3, offset: 42, from: "controller", time: 8))
        let summary = JobStatusSummary(job: "j1", shards: 18, done: 17, dead: 1, samples: 1700, failedSamples: 2, seconds: 4,
                                       reEnqueued: 2, duplicates: 1)
        #expect(summary.samplesPerSecond == 425)
        try roundTrip(JobManifest(config: sampleConfig, shards: 18, samples: 1797, createdAt: 10, updatedAt: 20, status: .done, summary: summary))
        try roundTrip(JobManifest(config: sampleConfig, shards: 1, createdAt: 10))
    }

    @Test("output is sorted-key JSON with the documented field names")
    func stableOutput() {
        let ack = AckRecord(job: "j", shard: "s000001", attempt: 0, run: "r", worker: "w", samples: 2, startedAt: 1, finishedAt: 2)
        #expect(text(codec.encode(ack))
            == #"{"attempt":0,"errorSamples":0,"finishedAt":2,"job":"j","run":"r","samples":2,"shard":"s000001","startedAt":1,"status":"done","v":1,"worker":"w"}"#)
        let result = ResultRecord(job: "j", id: "a/b", shard: "s000000", attempt: 1, run: "r", outcome: .output(JSONBytes(.array([.int(1), .double(0.5)]))))
        #expect(text(codec.encode(result)) == #"{"attempt":1,"id":"a/b","job":"j","output":[1,0.5],"run":"r","shard":"s000000","v":1}"#)
        let inline = ShardRecord(job: "j", shard: "s000000", source: .inline([InlineSample(id: "a", input: .int(1))]), samples: 1, createdAt: 5)
        #expect(text(codec.encode(inline))
            == #"{"attempt":0,"createdAt":5,"job":"j","reason":"initial","samples":1,"shard":"s000000","source":{"kind":"inline","samples":[{"id":"a","input":1}]},"v":1}"#)
        #expect(codec.encode(inline) == codec.encode(inline))
    }

    @Test("file and URL shard records in the documented form decode and re-encode byte for byte")
    func byteRangeWireForm() throws {
        let file = #"{"attempt":0,"createdAt":1795000000000,"job":"myjob","reason":"initial","samples":100,"shard":"s000003","source":{"checksum":"xxh64:0123456789abcdef","firstLine":301,"format":"jsonl","idField":"id","kind":"file","length":20411,"offset":61234,"path":"/data/digits.jsonl"},"v":1}"#
        let http = #"{"attempt":1,"createdAt":1795000012345,"job":"myjob","reason":"worker-lost","shard":"s000004","source":{"firstLine":101,"format":"csv","header":"id,text","idField":"id","kind":"http","length":4096,"offset":5120,"url":"http://127.0.0.1:8080/table.csv"},"v":1}"#
        let fileRecord = try codec.decode(ShardRecord.self, from: Array(file.utf8))
        #expect(fileRecord.source == .lines(LineSource(
            location: .file(path: "/data/digits.jsonl"),
            range: ByteRange(offset: 61234, length: 20411, firstLine: 301, format: .jsonl, idField: "id", checksum: "xxh64:0123456789abcdef"))))
        #expect(text(codec.encode(fileRecord)) == file)
        let httpRecord = try codec.decode(ShardRecord.self, from: Array(http.utf8))
        #expect(httpRecord.source == .lines(LineSource(
            location: .url("http://127.0.0.1:8080/table.csv"),
            range: ByteRange(offset: 5120, length: 4096, firstLine: 101, format: .csv, header: "id,text", idField: "id"))))
        #expect(text(codec.encode(httpRecord)) == http)
    }

    @Test("other versions are refused with a clear error")
    func versionRejection() {
        let shard = text(codec.encode(ShardRecord(job: "j", shard: "s000000", source: .inline([]), createdAt: 1)))
        #expect(decodeError(ShardRecord.self, shard.replacingOccurrences(of: "\"v\":1", with: "\"v\":7"))
            == "shard record: unsupported version 7 (expected 1)")
        #expect(decodeError(ShardRecord.self, shard.replacingOccurrences(of: ",\"v\":1", with: ""))
            == "shard record: missing field 'v' (the record format version; expected 1)")
        #expect(decodeError(ShardRecord.self, shard.replacingOccurrences(of: "\"v\":1", with: "\"v\":\"1\""))
            == "shard record: field 'v' must be the integer 1")
        #expect(decodeError(AckRecord.self, #"{"v":0}"#) == "ack record: unsupported version 0 (expected 1)")
        #expect(decodeError(JobManifest.self, #"{"v":2,"job":"x"}"#) == "job manifest: unsupported version 2 (expected 1)")
    }

    @Test("garbage is refused with a message naming the record and the problem")
    func garbage() {
        #expect(decodeError(ShardRecord.self, "")  == "shard record: not JSON: the record is empty")
        #expect(decodeError(ShardRecord.self, "hello")?.hasPrefix("shard record: not JSON: ") == true)
        #expect(decodeError(AckRecord.self, "{\"v\":1,")?.hasPrefix("ack record: not JSON: ") == true)
        #expect(decodeError(AckRecord.self, "[1,2]") == "ack record: not a JSON object")
        #expect(decodeError(AckRecord.self, "42") == "ack record: not a JSON object")
        do {
            _ = try codec.decode(HeartbeatRecord.self, from: [0xFF, 0x00, 0x13, 0x37])
            Issue.record("binary garbage decoded")
        } catch {
            #expect(error.code == .codec)
            #expect(error.message.hasPrefix("heartbeat record: not JSON: "))
        }
        #expect(decodeError(AckRecord.self, #"{"v":1,"job":"j"}"#) == "ack record: missing field 'shard'")
        #expect(decodeError(AckRecord.self, #"{"v":1,"job":"j","shard":"s000000","attempt":"zero"}"#)
            == "ack record: field 'attempt' has the wrong type (expected an integer)")
        #expect(decodeError(AckRecord.self, #"{"v":1,"job":null}"#) == "ack record: field 'job' is null (expected a string)")
        let ack = text(codec.encode(AckRecord(job: "j", shard: "s000000", attempt: 0, run: "r", worker: "w", samples: 1, startedAt: 1, finishedAt: 1)))
        #expect(decodeError(AckRecord.self, ack.replacingOccurrences(of: "\"done\"", with: "\"maybe\""))?.hasPrefix("ack record: field 'status': ") == true)
        #expect(decodeError(HeartbeatRecord.self,
            #"{"v":1,"job":"j","worker":"w","host":"h","pid":1,"time":1,"state":"running","inFlight":[{"shard":"s000000"}],"queued":[],"idle":true,"samplesPerSecond":0,"predictors":[]}"#)
            == "heartbeat record: missing field 'inFlight[0].attempt'")
    }

    @Test("a result has exactly one of output and error")
    func resultOutcome() {
        #expect(decodeError(ResultRecord.self, #"{"v":1,"job":"j","id":"a","shard":"s000000","attempt":0,"run":"r"}"#)
            == "result record: missing field 'output'")
        #expect(decodeError(ResultRecord.self, #"{"v":1,"job":"j","id":"a","shard":"s000000","attempt":0,"run":"r","output":1,"error":"x"}"#)?
            .hasPrefix("result record: field 'error': has both output and error") == true)
        let nullOutput = try? codec.decode(ResultRecord.self, from: Array(#"{"v":1,"job":"j","id":"a","shard":"s000000","attempt":0,"run":"r","output":null}"#.utf8))
        #expect(nullOutput?.outcome == .output(.null))
        #expect(nullOutput?.error == nil)
    }

    @Test("non-finite numbers do not break encoding")
    func nonFinite() throws {
        let result = ResultRecord(job: "j", id: "a", shard: "s000000", attempt: 0, run: "r", outcome: .output(JSONBytes(.array([.double(.nan), .double(1)]))))
        let json = text(codec.encode(result))
        #expect(json.contains(#""output":["NaN",1.0]"#))
        #expect(try codec.decode(ResultRecord.self, from: codec.encode(result)).output == .array([.string("NaN"), .int(1)]))
        let heartbeat = HeartbeatRecord(job: "j", worker: "w", host: "h", pid: 1, samplesPerSecond: .infinity)
        #expect(heartbeat.samplesPerSecond == 0)
        #expect(JobStatusSummary(job: "j", shards: 0, done: 0, dead: 0, samples: 0, failedSamples: 0, seconds: 0).samplesPerSecond == 0)
    }

    @Test("dead letters keep the raw record as text or base64")
    func deadLetterRaw() throws {
        let text = DeadLetterRecord(job: "j", reason: "r", raw: Array("plain".utf8), from: "w")
        #expect(text.raw == "plain" && text.rawBase64 == nil)
        let binary = DeadLetterRecord(job: "j", reason: "r", raw: [0xFF, 0x00, 0x80], from: "w")
        #expect(binary.raw == nil && binary.rawBase64 == "/wCA")
        #expect(try codec.decode(DeadLetterRecord.self, from: codec.encode(binary)).rawBytes == [0xFF, 0x00, 0x80])
    }

    @Test("shard ids, headers, record types")
    func identifiers() {
        #expect(ShardRecord.shardID(index: 0) == "s000000")
        #expect(ShardRecord.shardID(index: 42) == "s000042")
        #expect(ShardRecord.shardID(index: 1_234_567) == "s1234567")
        #expect([RecordHeaders.version, RecordHeaders.type, RecordHeaders.attempt] == ["flotilla-v", "flotilla-type", "flotilla-attempt"])
        #expect([JobManifest.recordType, ShardRecord.recordType, AckRecord.recordType, HeartbeatRecord.recordType,
                 ResultRecord.recordType, ControlRecord.recordType, DeadLetterRecord.recordType, SettleRecord.recordType]
            == ["job", "shard", "ack", "heartbeat", "result", "control", "dlq", "settle"])
        #expect(ControlRecord(job: "j", target: "*", command: .drain).applies(to: "w-1"))
        #expect(!ControlRecord(job: "j", target: "w-2", command: .drain).applies(to: "w-1"))
    }

    @Test("topic names follow DESIGN.md")
    func topicNames() {
        let topics = TopicNames(prefix: "flotilla", job: "myjob")
        #expect(topics.jobs == "flotilla.jobs")
        #expect(topics.shards == "flotilla.myjob.shards")
        #expect(topics.results == "flotilla.myjob.results")
        #expect(topics.acks == "flotilla.myjob.acks")
        #expect(topics.heartbeats == "flotilla.myjob.heartbeats")
        #expect(topics.control == "flotilla.myjob.control")
        #expect(topics.dlq == "flotilla.myjob.dlq")
        #expect(topics.perJob.count == 6)
        #expect(topics.workerGroup == "flotilla.myjob.workers")
        #expect(TopicNames.defaultShardPartitions(maxWorkers: 4) == 8)
        #expect(TopicNames.defaultShardPartitions(maxWorkers: 0) == 2)
        #expect(topics.partitions(of: topics.shards, shardPartitions: 32) == 32)
        #expect(topics.partitions(of: topics.results, shardPartitions: 32) == 1)
        #expect(topics.partitions(of: topics.results, shardPartitions: 32, resultPartitions: 4) == 4)
        #expect(topics.partitions(of: topics.acks, shardPartitions: 32) == 1)
        #expect(TopicNames.problem(withPrefix: "team-a.flotilla") == nil)
        #expect(TopicNames.problem(withPrefix: "a/b") != nil)
    }

    // Speed is measured by the benchmarks (release builds); this prints the rate and checks the round trip.
    @Test("5 000 result records encode and decode", .timeLimit(.minutes(1)))
    func throughput() throws {
        let records = (0..<5_000).map { index in
            ResultRecord(job: "bench", id: "digits:\(index)", shard: ShardRecord.shardID(index: index / 100), attempt: 0,
                         run: "7D2F0C8E-5B7A-4C1D-9E3F-0A1B2C3D4E5F", outcome: .output(JSONBytes(.object(["label": .int(Int64(index % 10)), "p": .double(0.97)]))))
        }
        let clock = ContinuousClock()
        var encoded: [[UInt8]] = []
        encoded.reserveCapacity(records.count)
        let encodeTime = clock.measure { for record in records { encoded.append(codec.encode(record)) } }
        var decodedCount = 0
        let decodeTime = try clock.measure {
            for bytes in encoded { decodedCount += try codec.decode(ResultRecord.self, from: bytes).attempt == 0 ? 1 : 0 }
        }
        #expect(decodedCount == records.count)
        let encodeRate = Double(records.count) / encodeTime.seconds
        let decodeRate = Double(records.count) / decodeTime.seconds
        print("result records: encode \(Int(encodeRate))/s, decode \(Int(decodeRate))/s (inside swift test, whose throw hooks slow decoding of JSON values)")
    }
}

@Suite("outputs.directory")
struct OutputDirectoryTests {
    @Test("Two done executions of a shard: the winner's file is moved into place, the loser's deleted, whatever order they finish")
    func settle() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-outdir-\(UUID().uuidString.prefix(8))").path
        let directory = OutputDirectory(folder)
        let winner = "0b7e4c2a-1f93-4d58-a6e2-7c9d3b1f5e40", loser = "3f9c2d1e-8a47-4b6e-9d0c-5e1f7a2b4c68"
        try directory.writePending(Data("loser\n".utf8), shard: "s000001", run: loser)
        try directory.writePending(Data("winner\n".utf8), shard: "s000001", run: winner)
        try directory.settle(shard: "s000001", run: winner, winner: winner)
        try directory.settle(shard: "s000001", run: loser, winner: winner)
        #expect(try String(contentsOfFile: "\(folder)/s000001.jsonl", encoding: .utf8) == "winner\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(folder)/.pending").isEmpty)
        // A controller replaying the same acks finds the file in place: fine.
        try directory.settle(shard: "s000001", run: winner, winner: winner)
        directory.removePending()
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder) == ["s000001.jsonl"])
    }

    @Test("Shard ids and run ids that are not ids never reach a path")
    func hostileIDs() {
        let directory = OutputDirectory("/tmp/x")
        for shard in ["/../../tmp/x", "s1", "s000001/..", "s00000a", "", "s" + String(repeating: "1", count: 30)] {
            #expect(throws: FlotillaError.self) { try directory.finalPath(shard: shard) }
            #expect(!ShardRecord.isValidShardID(shard))
        }
        #expect(throws: FlotillaError.self) { try directory.pendingPath(shard: "s000001", run: "../../x") }
        #expect(ShardRecord.isValidShardID("s000001") && ShardRecord.isValidShardID("s1234567"))
        let record = ShardRecord(job: "j", shard: "/../x", source: .inline([]), samples: 0)
        let error = #expect(throws: FlotillaError.self) { try RecordCodec.shared.decode(ShardRecord.self, from: RecordCodec.shared.encode(record)) }
        #expect(error?.message.contains("invalid shard id '/../x'") == true)
    }
}

@Suite("Manifest signing and declared sources")
struct ManifestSignatureTests {
    private func manifest() -> JobManifest {
        let config = JobConfig(job: "j", inputs: [.lines(LinesInput(.file(path: "/data/in.jsonl"), format: .jsonl))],
                               stages: [StageConfig(name: "m", predictor: .command(["python3", "m.py"]))], baseDirectory: "/data")
        return JobManifest(config: config, shards: 1, createdAt: 1)
    }

    @Test("Sign, verify; a changed config, another key or no signature is refused; status changes are fine")
    func signing() {
        let signer = ManifestSignature(key: Array("0123456789abcdef".utf8))
        var signed = signer.sign(manifest())
        #expect(signer.problem(with: signed) == nil)
        signed.status = .running
        signed.updatedAt = 99
        #expect(signer.problem(with: signed) == nil, "what the controller rewrites is not signed")
        var changed = signed
        changed.config.stages[0].predictor = .command(["sh", "-c", "id"])
        #expect(signer.problem(with: changed)?.contains("does not match") == true)
        #expect(ManifestSignature(key: Array("another key, 16+ bytes".utf8)).problem(with: signed)?.contains("does not match") == true)
        #expect(signer.problem(with: manifest())?.contains("is not signed") == true)
        var garbled = signed
        garbled.signature = "hmac-sha256:zz"
        #expect(signer.problem(with: garbled)?.contains("malformed") == true)
    }

    @Test("Keys from the environment: text or file, at least 16 bytes")
    func keys() throws {
        #expect(try ManifestSignature.fromEnvironment([:]) == nil)
        #expect(throws: FlotillaError.self) { try ManifestSignature.fromEnvironment(["FLOTILLA_MANIFEST_KEY": "short"]) }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-key-\(UUID().uuidString)").path
        try "0123456789abcdef0123\n".write(toFile: path, atomically: true, encoding: .utf8)
        let fromFile = try #require(try ManifestSignature.fromEnvironment(["FLOTILLA_MANIFEST_KEY_FILE": path]))
        let fromText = try #require(try ManifestSignature.fromEnvironment(["FLOTILLA_MANIFEST_KEY": "0123456789abcdef0123"]))
        #expect(fromText.problem(with: fromFile.sign(manifest())) == nil, "the file's trailing newline is not part of the key")
    }

    @Test("Only declared files and URLs may be read; inline samples always")
    func declaredSources() {
        let config = manifest().config
        let range = ByteRange(offset: 0, length: 10, firstLine: 1, format: .jsonl)
        #expect(config.problem(with: .lines(LineSource(location: .file(path: "/data/in.jsonl"), range: range))) == nil)
        #expect(config.problem(with: .lines(LineSource(location: .file(path: "/etc/passwd"), range: range)))?.contains("not declared") == true)
        #expect(config.problem(with: .lines(LineSource(location: .url("http://169.254.169.254/"), range: range)))?.contains("not declared") == true)
        #expect(config.problem(with: .inline([])) == nil)
    }
}
