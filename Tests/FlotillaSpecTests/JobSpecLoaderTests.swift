import FlotillaCore
@testable import FlotillaSpec
import Foundation
import Testing

/// Loads `yaml` as "job.yaml" in /specs (so relative paths resolve to /specs/...).
func loadSpec(_ yaml: String, builtins: Set<String>? = nil) throws(FlotillaError) -> JobConfig {
    try JobSpecLoader.load(yaml: yaml, fileName: "job.yaml", baseDirectory: "/specs", builtins: builtins)
}

let minimalSpec = """
    inputs:
      - file: data/digits.jsonl
    stages:
      - name: classify
        builtin: identity
    """

@Suite("Job spec loading")
struct JobSpecLoaderTests {
    @Test("a minimal spec gets every documented default")
    func defaults() throws {
        let config = try loadSpec(minimalSpec)
        #expect(JobSpecLoader.problem(withJobID: config.job) == nil)
        #expect(config.job.hasPrefix("job-"))
        #expect(config.inputs == [.lines(LinesInput(.file(path: "/specs/data/digits.jsonl"), format: .jsonl, idField: .standard))])
        #expect(config.shard == ShardConfig(samples: 100, maxSampleBytes: 995_904))
        #expect(config.stages.count == 1)
        let stage = config.stages[0]
        #expect(stage.name == "classify")
        #expect(stage.predictor == .builtin("identity"))
        #expect(stage.batch == 32)
        #expect(stage.processes == ProcessRange(min: 1, max: 1))
        #expect(stage.timeout == .seconds(60))
        #expect(stage.startTimeout == .seconds(60))
        #expect(stage.env.isEmpty)
        #expect(config.outputs == OutputConfig(results: true, directory: nil))
        #expect(config.workers == FleetConfig(min: 1, max: 4))
        #expect(config.faults == FaultConfig(
            maxAttempts: 3, heartbeat: .seconds(1), workerTimeout: .seconds(5), shardTimeout: .seconds(60), speculative: true))
        #expect(config.delivery == .exactlyOnce)
        #expect(config.kafka == KafkaConfig(
            brokers: nil, topicPrefix: "flotilla", partitions: 0, replicationFactor: nil,
            maxMessageBytes: 1_000_000, properties: [:]))
        #expect(config.shardPartitions == 8)
        #expect(config.resultPartitions == 1)
        #expect(config.baseDirectory == "/specs")
    }

    @Test("every key of a full spec is read")
    func fullSpec() throws {
        let config = try loadSpec("""
            job: my-job.v2_1
            inputs:
              - file: /data/a.csv
                id: key
              - file: b.txt
                format: jsonl
              - url: https://example.invalid/path/c.csv?sig=1
              - inline: [ {id: a, input: {x: 1}}, 7, "text", {x: 2}, {input: null} ]
            shard: { samples: 10, maxSampleBytes: 2048 }
            stages:
              - name: one
                predictor: [python3, predict.py, --model, models/m.pkl, --flag=a/b, -m, /abs/x]
                batch: 4
                processes: { min: 2, max: 3 }
                timeout: 500ms
                startTimeout: 2m
                env: { THREADS: 4, MODE: fast }
              - name: two
                builtin: identity
                processes: 2
            outputs: { results: false, directory: out/ }
            workers: 3
            faults: { maxAttempts: 5, heartbeat: 0.5, workerTimeout: 3s, shardTimeout: 1h, speculative: false }
            delivery: at-least-once
            kafka:
              brokers: "127.0.0.1:9092,127.0.0.2:9093"
              topicPrefix: team.x
              partitions: 12
              resultPartitions: 4
              replicationFactor: 3
              maxMessageBytes: 2000000
              properties: { security.protocol: SASL_SSL, linger.ms: 5 }
            """)
        #expect(config.job == "my-job.v2_1")
        #expect(config.inputs[0] == .lines(LinesInput(.file(path: "/data/a.csv"), format: .csv, idField: "key")))
        #expect(config.inputs[1] == .lines(LinesInput(.file(path: "/specs/b.txt"), format: .jsonl)))
        #expect(config.inputs[2] == .lines(LinesInput(.url("https://example.invalid/path/c.csv?sig=1"), format: .csv)))
        #expect(config.inputs[3] == .inline([
            InlineSample(id: "a", input: .object(["x": .int(1)])),
            InlineSample(id: "inline:2", input: .int(7)),
            InlineSample(id: "inline:3", input: .string("text")),
            InlineSample(id: "inline:4", input: .object(["x": .int(2)])),
            InlineSample(id: "inline:5", input: .null),
        ]))
        #expect(config.shard == ShardConfig(samples: 10, maxSampleBytes: 2048))
        let one = config.stages[0]
        #expect(one.predictor == .command(["python3", "predict.py", "--model", "/specs/models/m.pkl", "--flag=a/b", "-m", "/abs/x"]))
        #expect(one.batch == 4)
        #expect(one.processes == ProcessRange(min: 2, max: 3))
        #expect(one.timeout == .milliseconds(500))
        #expect(one.startTimeout == .seconds(120))
        #expect(one.env == ["THREADS": "4", "MODE": "fast"])
        #expect(config.stages[1].processes == ProcessRange(min: 2, max: 2))
        #expect(config.outputs == OutputConfig(results: false, directory: "/specs/out"))
        #expect(config.workers == FleetConfig(min: 3, max: 3))
        #expect(config.faults == FaultConfig(
            maxAttempts: 5, heartbeat: .milliseconds(500), workerTimeout: .seconds(3), shardTimeout: .seconds(3600), speculative: false))
        #expect(config.delivery == .atLeastOnce)
        #expect(config.kafka.brokers == "127.0.0.1:9092,127.0.0.2:9093")
        #expect(config.kafka.topicPrefix == "team.x")
        #expect(config.kafka.partitions == 12)
        #expect(config.shardPartitions == 12)
        #expect(config.resultPartitions == 4)
        #expect(config.kafka.replicationFactor == 3)
        #expect(config.kafka.maxMessageBytes == 2_000_000)
        #expect(config.kafka.properties == ["security.protocol": "SASL_SSL", "linger.ms": "5"])
        #expect(config.topics.shards == "team.x.my-job.v2_1.shards")
    }

    @Test("CRLF line endings, comments, anchors and explicit nulls are fine")
    func yamlForms() throws {
        let crlf = try loadSpec("# comment\r\ninputs:\r\n  - file: a.csv   # trailing\r\nstages:\r\n  - name: s\r\n    builtin: identity\r\nshard:\r\n")
        #expect(crlf.inputs == [.lines(LinesInput(.file(path: "/specs/a.csv"), format: .csv))])
        #expect(crlf.shard == ShardConfig())
        let anchors = try loadSpec("""
            inputs: [{file: a.jsonl}]
            stages:
              - &base {name: a, builtin: identity, batch: 8}
              - {name: b, builtin: identity, batch: 16}
            """)
        #expect(anchors.stages.map(\.batch) == [8, 16])
        let quoted = try loadSpec(minimalSpec + "\njob: \"2024\"\n")
        #expect(quoted.job == "2024")
    }

    @Test("min-only ranges default max to at least min")
    func rangeDefaults() throws {
        let config = try loadSpec(minimalSpec.replacingOccurrences(of: "builtin: identity", with: """
            builtin: identity
                processes: { min: 3 }
            """) + "\nworkers: { min: 6 }\n")
        #expect(config.stages[0].processes == ProcessRange(min: 3, max: 3))
        #expect(config.workers == FleetConfig(min: 6, max: 6))
        #expect(config.shardPartitions == 12)
        let zero = try loadSpec(minimalSpec + "\nworkers: { min: 0, max: 2 }\n")
        #expect(zero.workers == FleetConfig(min: 0, max: 2))
    }

    @Test("relative paths resolve against the spec file's folder")
    func pathsResolveAgainstSpecFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-spec-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("conf"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let specPath = folder.appendingPathComponent("conf/job.yaml").path
        try """
            inputs: [{file: ../data/in.csv}]
            stages:
              - name: s
                predictor: [../venv/bin/python, ./p.py, x/y.bin, "a b/c", https://h/x, ~/m]
            outputs: { directory: ../out }
            """.write(toFile: specPath, atomically: true, encoding: .utf8)
        let config = try JobSpecLoader.load(path: specPath)
        let root = SpecPaths.normalize(folder.path)
        #expect(config.baseDirectory == root + "/conf")
        #expect(config.inputs == [.lines(LinesInput(.file(path: root + "/data/in.csv"), format: .csv))])
        #expect(config.stages[0].predictor == .command([
            root + "/venv/bin/python", root + "/conf/p.py", root + "/conf/x/y.bin", "a b/c", "https://h/x", "~/m",
        ]))
        #expect(config.outputs.directory == root + "/out")
    }

    @Test("a spec given as text with a relative file name resolves against the current directory")
    func relativeFileName() throws {
        let config = try JobSpecLoader.load(yaml: minimalSpec, fileName: "conf/job.yaml")
        let cwd = SpecPaths.normalize(FileManager.default.currentDirectoryPath)
        #expect(config.baseDirectory == cwd + "/conf")
        #expect(config.inputs == [.lines(LinesInput(.file(path: cwd + "/conf/data/digits.jsonl"), format: .jsonl))])
    }

    @Test("generated job ids have the documented shape and differ")
    func generatedJobID() throws {
        let date = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18 11:06:40 UTC
        let id = JobSpecLoader.generateJobID(now: date)
        #expect(id.hasPrefix("job-20261118-110640-"))
        #expect(id.count == "job-20261118-110640-abcd".count)
        #expect(JobSpecLoader.problem(withJobID: id) == nil)
        let ids = Set((0..<20).map { _ in JobSpecLoader.generateJobID(now: date) })
        #expect(ids.count > 1)
    }

    @Test("builtin names are checked against the given registry")
    func builtinRegistry() throws {
        #expect(try loadSpec(minimalSpec, builtins: ["identity", "hash-embed"]).stages[0].predictor == .builtin("identity"))
        let error = #expect(throws: FlotillaError.self) {
            try loadSpec(minimalSpec.replacingOccurrences(of: "identity", with: "idnetity"), builtins: ["identity", "hash-embed"])
        }
        #expect(error?.message == "stages[0].builtin 'idnetity' is not a builtin predictor; known: hash-embed, identity (job.yaml:5)")
    }

    @Test("durations parse and format")
    func durations() {
        #expect(SpecDuration.parse("500ms") == .milliseconds(500))
        #expect(SpecDuration.parse("5s") == .seconds(5))
        #expect(SpecDuration.parse("2m") == .seconds(120))
        #expect(SpecDuration.parse("1h") == .seconds(3600))
        #expect(SpecDuration.parse("1.5") == .milliseconds(1500))
        #expect(SpecDuration.parse("30") == .seconds(30))
        #expect(SpecDuration.parse(" 2 s ") == .seconds(2))
        for bad in ["", "s", "-1s", "5x", "1e3", "1.2.3s", "0.0001s", "inf", "five"] {
            #expect(SpecDuration.parse(bad) == nil, "\(bad)")
        }
        #expect(SpecDuration.format(.milliseconds(500)) == "500ms")
        #expect(SpecDuration.format(.milliseconds(1500)) == "1500ms")
        #expect(SpecDuration.format(.seconds(5)) == "5s")
        #expect(SpecDuration.format(.seconds(120)) == "2m")
        #expect(SpecDuration.format(.seconds(7200)) == "2h")
        #expect(SpecDuration.format(.zero) == "0ms")
    }

    @Test("argv entries that look like relative paths are resolved, others kept")
    func argvRule() {
        #expect(SpecPaths.isRelativePathArgument("examples/p.py"))
        #expect(SpecPaths.isRelativePathArgument("../x"))
        #expect(SpecPaths.isRelativePathArgument("./p.py"))
        for kept in ["python3", "/usr/bin/python3", "--model", "--model=a/b", "-m", "~/x", "http://h/x", "a b/c", "c:/x"] {
            #expect(!SpecPaths.isRelativePathArgument(kept), "\(kept)")
        }
        #expect(SpecPaths.resolve("../../x/./y", against: "/a/b/c") == "/a/x/y")
        #expect(SpecPaths.resolve("/abs//p", against: "/a") == "/abs/p")
        #expect(SpecPaths.directory(of: "job.yaml") == ".")
        #expect(SpecPaths.directory(of: "/job.yaml") == "/")
        #expect(SpecPaths.directory(of: "a/b/job.yaml") == "a/b")
    }

    @Test("formats come from the extension")
    func formatFromExtension() {
        #expect(LineFormat.fromExtension(of: "a.jsonl") == .jsonl)
        #expect(LineFormat.fromExtension(of: "a.NDJSON") == .jsonl)
        #expect(LineFormat.fromExtension(of: "a.json") == .jsonl)
        #expect(LineFormat.fromExtension(of: "dir.v2/a.csv") == .csv)
        #expect(LineFormat.fromExtension(of: "http://h/x.csv?a=b.jsonl") == .csv)
        #expect(LineFormat.fromExtension(of: "dir.csv/data") == nil)
        #expect(LineFormat.fromExtension(of: "a.txt") == nil)
    }

    @Test("a loaded config survives a JSON round trip (as the manifest carries it)")
    func configCodable() throws {
        let config = try loadSpec("""
            job: round-trip
            inputs: [{file: a.csv}, {url: "http://h/x.jsonl", id: k}, {inline: [1, {id: z, input: [true, 2.5]}]}]
            stages:
              - {name: a, predictor: [x, y/z], timeout: 1500ms, env: {A: b}}
              - {name: b, builtin: identity}
            outputs: {directory: out}
            faults: {heartbeat: 250ms}
            kafka: {replicationFactor: 2, properties: {acks: all}}
            """)
        let data = try JSONEncoder().encode(config)
        let decoded = try JSONDecoder().decode(JobConfig.self, from: data)
        #expect(decoded == config)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"timeout\":\"1500ms\""))
        #expect(text.contains("\"heartbeat\":\"250ms\""))
        #expect(text.contains("\"builtin\":\"identity\""))
    }
}
