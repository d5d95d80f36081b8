import FlotillaCore
@testable import FlotillaSpec
import Foundation
import Testing

/// The error `yaml` fails to load with; records an issue when it loads.
func specError(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> FlotillaError? {
    do {
        _ = try loadSpec(yaml)
        Issue.record("expected the spec to be refused", sourceLocation: sourceLocation)
        return nil
    } catch {
        #expect(error.code == .invalidConfiguration, sourceLocation: sourceLocation)
        #expect(error.exitCode == 2, sourceLocation: sourceLocation)
        return error
    }
}

/// `minimalSpec` plus `extra` top-level YAML.
func withExtra(_ extra: String) -> String { minimalSpec + "\n" + extra + "\n" }

@Suite("Job spec validation")
struct JobSpecValidationTests {
    @Test("the message names the field and file:line", arguments: [
        ("shard: { samples: 0 }", "shard.samples must be > 0 (job.yaml:6)"),
        ("shard:\n  samples: -3", "shard.samples must be > 0 (job.yaml:7)"),
        ("shard: { maxSampleBytes: 0 }", "shard.maxSampleBytes must be > 0 (job.yaml:6)"),
        ("shard: { samples: ten }", "shard.samples must be an integer, not 'ten' (job.yaml:6)"),
        ("shard: { samples: 1.5 }", "shard.samples must be an integer, not '1.5' (job.yaml:6)"),
        ("shard: 100", "shard must be a mapping with keys samples, maxSampleBytes, not '100' (job.yaml:6)"),
        ("workers: { min: 3, max: 2 }", "workers.max (2) must be >= workers.min (3) (job.yaml:6)"),
        ("workers: { min: -1 }", "workers.min must be >= 0 (job.yaml:6)"),
        ("workers: 0", "workers must be > 0 (job.yaml:6)"),
        ("faults: { heartbeat: 5x }", "faults.heartbeat must be a duration such as 500ms, 5s, 2m or a number of seconds, not '5x' (job.yaml:6)"),
        ("faults: { workerTimeout: -5s }", "faults.workerTimeout must be a duration such as 500ms, 5s, 2m or a number of seconds, not '-5s' (job.yaml:6)"),
        ("faults: { shardTimeout: 0s }", "faults.shardTimeout must be > 0 (job.yaml:6)"),
        ("faults: { maxAttempts: 0 }", "faults.maxAttempts must be > 0 (job.yaml:6)"),
        ("faults: { maxAttempts: 1000 }", "faults.maxAttempts must be <= 100 (job.yaml:6)"),
        ("faults: { heartbeat: 5s }", "faults.workerTimeout (5s) must be longer than faults.heartbeat (5s), or a worker is declared lost between two heartbeats (job.yaml:6)"),
        ("faults: { speculative: maybe }", "faults.speculative must be true or false, not 'maybe' (job.yaml:6)"),
        ("delivery: exactly_once", "delivery must be exactly-once or at-least-once, not 'exactly_once' (job.yaml:6)"),
        ("outputs: { results: false }", "outputs sends results nowhere: set results: true or a directory (job.yaml:6)"),
        ("outputs: { results: 1 }", "outputs.results must be true or false, not '1' (job.yaml:6)"),
        ("job: My_Job", "job may hold only a-z, 0-9, '.', '_' and '-', not 'M' (job.yaml:6)"),
        ("job: \(String(repeating: "a", count: 65))", "job must be at most 64 characters, not 65 (job.yaml:6)"),
        ("job: 42", "job must be a string, not '42' (quote it if you mean the text) (job.yaml:6)"),
        ("kafka: { brokers: localhost }", "kafka.brokers must be host:port[,host:port...], not 'localhost' (job.yaml:6)"),
        ("kafka: { topicPrefix: 'a b' }", "kafka.topicPrefix may hold only letters, digits, '.', '_' and '-', not ' ' (job.yaml:6)"),
        ("kafka: { partitions: -1 }", "kafka.partitions must be >= 0 (0 means 2 x workers.max) (job.yaml:6)"),
        ("kafka: { resultPartitions: 0 }", "kafka.resultPartitions must be > 0 (job.yaml:6)"),
        ("kafka: { maxMessageBytes: 10 }", "kafka.maxMessageBytes must be between 1000 and 1000000000, not 10 (job.yaml:6)"),
        ("kafka: { properties: { group.id: mine } }", "kafka.properties may not set 'group.id': Flotilla names the worker group itself (job.yaml:6)"),
        ("kafka: { properties: [a, b] }", "kafka.properties must be a mapping of names to values, not a list (job.yaml:6)"),
    ])
    func fieldErrors(extra: String, message: String) {
        #expect(specError(withExtra(extra))?.message == message)
    }

    @Test("devices: a count for predictor processes only")
    func devices() throws {
        #expect(specError(minimalSpec.replacingOccurrences(of: "builtin: identity", with: "builtin: identity\n    devices: 1"))?.message.contains("devices is for predictor processes") == true)
        let spec = minimalSpec.replacingOccurrences(of: "builtin: identity", with: "predictor: [python3, p.py]\n    devices: -1")
        #expect(specError(spec)?.message.contains("must be >= 0") == true)
    }

    @Test("unknown keys are refused at every level, with the expected keys")
    func unknownKeys() {
        #expect(specError(withExtra("wokers: 2"))?.message
            == "unknown key 'wokers' at the top level (job.yaml:6); expected one of: job, inputs, shard, stages, outputs, workers, faults, delivery, kafka, mode")
        #expect(specError(minimalSpec.replacingOccurrences(of: "builtin: identity", with: "builtin: identity\n    modle: x"))?.message
            == "unknown key 'modle' in stages[0] (job.yaml:6); expected one of: name, predictor, builtin, batch, processes, timeout, startTimeout, env, passEnv, devices")
        #expect(specError(withExtra("shard: { sample: 5 }"))?.message
            == "unknown key 'sample' in shard (job.yaml:6); expected one of: samples, maxSampleBytes")
        #expect(specError(withExtra("faults:\n  heartbeat: 1s\n  retries: 2"))?.message
            == "unknown key 'retries' in faults (job.yaml:8); expected one of: maxAttempts, heartbeat, workerTimeout, shardTimeout, speculative, maxErrorRate")
        #expect(specError(minimalSpec.replacingOccurrences(of: "- file: data/digits.jsonl", with: "- file: data/digits.jsonl\n    fromat: csv"))?.message
            == "unknown key 'fromat' in inputs[0] (job.yaml:3); expected one of: file, url, inline, format, id")
        #expect(specError(minimalSpec.replacingOccurrences(of: "builtin: identity", with: "builtin: identity\n    processes: {min: 1, mx: 2}"))?.message
            == "unknown key 'mx' in stages[0].processes (job.yaml:6); expected one of: min, max")
        #expect(specError(withExtra("kafka: { broker: 'a:1' }"))?.message
            == "unknown key 'broker' in kafka (job.yaml:6); expected one of: brokers, topicPrefix, partitions, resultPartitions, replicationFactor, maxMessageBytes, properties")
    }

    @Test("malformed YAML gives a message with the line")
    func malformedYAML() {
        let bad = specError("inputs:\n  - file: a.jsonl\nstages: [\n  name: x\n")
        #expect(bad?.message.hasPrefix("malformed YAML: ") == true)
        #expect(bad?.message.contains("(job.yaml:") == true)
        let tabs = specError("inputs:\n\t- file: a.jsonl\n")
        #expect(tabs?.message.contains("malformed YAML") == true)
        #expect(tabs?.message.contains("job.yaml:2") == true)
        let colon = specError("inputs: a: b\n")
        #expect(colon?.message.contains("job.yaml:1") == true)
        #expect(specError(withExtra("shard: {samples: 1}\nshard: {samples: 2}"))?.message == "duplicate key 'shard' (job.yaml:6)")
        #expect(specError("")?.message == "job.yaml is empty; a job spec needs at least 'inputs' and 'stages'")
        #expect(specError("# only a comment\n")?.message == "job.yaml is empty; a job spec needs at least 'inputs' and 'stages'")
        #expect(specError("- a\n- b\n")?.message.hasPrefix("the job spec must be a mapping with keys job, inputs,") == true)
    }

    @Test("inputs and stages are required and must not be empty")
    func missingSections() {
        #expect(specError("stages: [{name: a, builtin: identity}]")?.message == "inputs is required (job.yaml:1)")
        #expect(specError("inputs: [{file: a.jsonl}]")?.message == "stages is required (job.yaml:1)")
        #expect(specError("inputs: []\nstages: [{name: a, builtin: identity}]")?.message
            == "inputs must list at least one input (file, url or inline) (job.yaml:1)")
        #expect(specError("inputs: [{file: a.jsonl}]\nstages: []")?.message == "stages must list at least one stage (job.yaml:2)")
        #expect(specError("inputs:\nstages: [{name: a, builtin: identity}]")?.message == "inputs is required (job.yaml:1)")
        #expect(specError("inputs: {file: a.jsonl}\nstages: [{name: a, builtin: identity}]")?.message
            == "inputs must be a list, not a mapping (job.yaml:1)")
    }

    @Test("input errors")
    func inputErrors() {
        func input(_ yaml: String) -> String? {
            specError("inputs:\n  - \(yaml)\nstages: [{name: a, builtin: identity}]")?.message
        }
        #expect(input("{file: a.jsonl, url: 'http://h/a.jsonl'}")
            == "inputs[0] has file and url; give exactly one of file, url or inline (job.yaml:2)")
        #expect(input("{format: csv}") == "inputs[0] needs one of file, url or inline (job.yaml:2)")
        #expect(input("{file: data.txt}")
            == "inputs[0].format is needed: 'data.txt' has no .jsonl, .ndjson, .json or .csv extension (set format: jsonl or format: csv) (job.yaml:2)")
        #expect(input("{file: a.jsonl, format: parquet}") == "inputs[0].format must be jsonl or csv, not 'parquet' (job.yaml:2)")
        #expect(input("{file: ''}") == "inputs[0].file must not be empty (job.yaml:2)")
        #expect(input("{file: [a, b]}") == "inputs[0].file must be a string, not a list (job.yaml:2)")
        #expect(input("{url: 'ftp://h/a.csv'}")
            == "inputs[0].url must be an http:// or https:// URL, not 'ftp://h/a.csv' (use file: for local files) (job.yaml:2)")
        #expect(input("{url: 'http:///a.csv'}") == "inputs[0].url must name a host, not 'http:///a.csv' (job.yaml:2)")
        #expect(input("{inline: []}") == "inputs[0].inline must list at least one sample (job.yaml:2)")
        #expect(input("{inline: [1], format: jsonl}")
            == "inputs[0].format applies only to file and url inputs; inline samples carry their own ids (job.yaml:2)")
        #expect(input("{inline: [{id: a, input: 1}, {id: a, input: 2}]}")
            == "inputs[0].inline[1] has the id 'a', already used by inputs[0].inline[0]; sample ids must be unique (job.yaml:2)")
        #expect(input("{inline: [.nan]}")?.contains("not a finite number") == true)
        #expect(input("a.jsonl")?.hasPrefix("inputs[0] must be a mapping with keys file, url, inline, format, id, not 'a.jsonl'") == true)
    }

    @Test("stage errors")
    func stageErrors() {
        func stage(_ yaml: String) -> String? {
            specError("inputs: [{file: a.jsonl}]\nstages:\n  - \(yaml)")?.message
        }
        #expect(stage("{name: a, predictor: [python3, p.py], builtin: identity}")
            == "stages[0] has both predictor and builtin; give exactly one (job.yaml:3)")
        #expect(stage("{name: a}")
            == "stages[0] needs either predictor (a command as a list, e.g. [python3, predict.py]) or builtin (e.g. identity) (job.yaml:3)")
        #expect(stage("{builtin: identity}") == "stages[0].name is required (job.yaml:3)")
        #expect(stage("{name: 'a b', builtin: identity}")
            == "stages[0].name may hold only letters, digits, '.', '_' and '-', not ' ' (job.yaml:3)")
        #expect(stage("{name: a, predictor: 'python3 p.py'}")
            == "stages[0].predictor must be a list of strings, not 'python3 p.py' (job.yaml:3)")
        #expect(stage("{name: a, predictor: []}")
            == "stages[0].predictor must not be empty: give the command and its arguments (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, batch: 0}") == "stages[0].batch must be > 0 (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, batch: many}") == "stages[0].batch must be an integer, not 'many' (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, processes: {min: 3, max: 2}}")
            == "stages[0].processes.max (2) must be >= stages[0].processes.min (3) (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, processes: {min: 0}}") == "stages[0].processes.min must be > 0 (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, timeout: soon}")
            == "stages[0].timeout must be a duration such as 500ms, 5s, 2m or a number of seconds, not 'soon' (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, timeout: 0}") == "stages[0].timeout must be > 0 (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, env: [A]}")
            == "stages[0].env must be a mapping of names to values, not a list (job.yaml:3)")
        #expect(stage("{name: a, builtin: identity, env: {'A=B': c}}")
            == "stages[0].env has the variable name 'A=B', which may not contain '=' (job.yaml:3)")
        let duplicate = specError("""
            inputs: [{file: a.jsonl}]
            stages:
              - name: same
                builtin: identity
              - name: same
                builtin: identity
            """)?.message
        #expect(duplicate == "stages[1].name 'same' is already the name of stages[0]; stage names must be unique (job.yaml:5)")
    }

    @Test("a missing or unreadable spec file is a configuration error")
    func unreadableFile() {
        let missing = "/nonexistent-\(UUID().uuidString)/job.yaml"
        let error = #expect(throws: FlotillaError.self) { try JobSpecLoader.load(path: missing) }
        #expect(error?.message == "cannot read job spec '\(missing)': no such file")
        #expect(error?.code == .invalidConfiguration)
        let folder = FileManager.default.temporaryDirectory.path
        let folderError = #expect(throws: FlotillaError.self) { try JobSpecLoader.load(path: folder) }
        #expect(folderError?.message == "cannot read job spec '\(folder)': it is a folder")
        let binary = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(UUID().uuidString).yaml")
        #expect(FileManager.default.createFile(atPath: binary.path, contents: Data([0xFF, 0xFE, 0x00, 0xC3])))
        defer { try? FileManager.default.removeItem(at: binary) }
        let binaryError = #expect(throws: FlotillaError.self) { try JobSpecLoader.load(path: binary.path) }
        #expect(binaryError?.message == "cannot read job spec '\(binary.path)': it is not UTF-8 text")
    }
}

@Suite("Kafka properties that break the contract or hold secrets")
struct KafkaPropertyRulesTests {
    @Test("auto.offset.reset, group.instance.id and secrets are refused in the spec, with the reason")
    func refused() throws {
        for (key, reason) in [("auto.offset.reset", "reads every shard record"), ("group.instance.id", "static membership"),
                              ("sasl.password", "may not hold the secret"), ("ssl.key.password", "may not hold the secret")] {
            let yaml = "job: j\ninputs: [{inline: [{id: a, input: 1}]}]\nstages: [{name: e, builtin: identity}]\nkafka: { properties: { \(key): x } }\n"
            let error = #expect(throws: FlotillaError.self) { try JobSpecLoader.load(yaml: yaml, fileName: "job.yaml", baseDirectory: "/tmp", builtins: ["identity"]) }
            #expect(error?.message.contains(reason) == true, "\(key): \(error?.message ?? "")")
        }
        #expect(!KafkaConfig.isSecret("sasl.username") && KafkaConfig.isSecret("sasl.oauthbearer.client.secret"))
    }
}
