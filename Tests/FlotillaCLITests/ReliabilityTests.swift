import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

/// Failure modes outside the fault suite (issue "Reliability"), through the real executable.
@Suite("Reliability", .serialized, .timeLimit(.minutes(5)))
struct ReliabilityTests {
    /// A folder with `in.jsonl` and a spec of one identity stage; `shard` is the spec's shard mapping.
    private func identityJob(_ name: String, lines: [String], shard: String = "{ samples: 10 }",
                             extra: String = "") throws -> (folder: String, spec: String) {
        let folder = try JobFolder("rel")
        try folder.write("in.jsonl", lines.joined(separator: "\n") + "\n")
        try folder.write("job.yaml", """
            job: \(JobFolder.jobID(name))
            inputs: [{file: in.jsonl}]
            shard: \(shard)
            stages: [{name: echo, builtin: identity}]
            workers: 1
            \(extra)
            """)
        return (folder.path, "\(folder.path)/job.yaml")
    }

    private func results(_ path: String) throws -> [String: [String: Any]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        var byID: [String: [String: Any]] = [:]
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            byID[try #require(object["id"] as? String)] = object
        }
        #expect(byID.count == lines.count, "one line per sample")
        return byID
    }

    @Test("A ~999 990-byte line with identity: one error result naming the size and the limit, the rest done, exit 0")
    func oversizedResult() throws {
        let big = #"{"id":"big","pad":""# + String(repeating: "x", count: 999_990 - 21) + #""}"#
        let lines = (0..<30).map { #"{"id":"n\#($0)","n":\#($0)}"# } + [big] + (30..<40).map { #"{"id":"n\#($0)","n":\#($0)}"# }
        for (round, shard) in ["{ samples: 10 }", "{ samples: 10, maxSampleBytes: 2000000 }"].enumerated() {
            let (folder, spec) = try identityJob("oversized", lines: lines, shard: shard)
            let run = try CommandRunner.run([CommandRunner.flotillaExecutable, "run", spec, "--json", "--out", "\(folder)/out.jsonl"],
                                            directory: folder)
            #expect(run.status == 0, "round \(round): \(run.stderr)")
            let byID = try results("\(folder)/out.jsonl")
            #expect(byID.count == 41)
            let error = try #require(byID["big"]?["error"] as? String, "round \(round): \(String(describing: byID["big"]?.keys))")
            if round == 0 {
                // The default sample limit leaves room for the record around it: refused at read.
                #expect(error.contains("995904"), "round 0: \(error)")
            } else {
                #expect(error.contains("over the 1000000-byte record limit (kafka.maxMessageBytes)"), "round 1: \(error)")
            }
            #expect(byID.values.filter { $0["error"] != nil }.count == 1, "round \(round)")
        }
    }

    @Test("outputs.directory with a speculative copy: each shard's file holds the winning ack's run, nothing pending is left")
    func directoryExactlyOnce() async throws {
        // w2 is ten times slower: the idle w1 starts a speculative copy of its straggler.
        let stage = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '0.2', --slow-worker, w2=10]"
        let harness = try await FleetHarness(samples: 100, samplesPerShard: 10, stage: stage, faults: ", speculative: true",
                                             maxWorkers: 2, outputs: "outputs: { results: true, directory: out }")
        try harness.submit()
        try harness.startController(workers: 2)
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 0)
        let acks = try await harness.acks().filter { $0.status == .done }
        var winners: [String: String] = [:]
        for ack in acks where winners[ack.shard] == nil { winners[ack.shard] = ack.run }
        #expect(winners.count == 10)
        for (shard, run) in winners {
            let lines = try String(contentsOfFile: "\(harness.folder)/out/\(shard).jsonl", encoding: .utf8).split(separator: "\n")
            #expect(lines.count == 10, "\(shard)")
            for line in lines {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                #expect(object["run"] as? String == run, "\(shard): a line of a losing execution")
            }
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: "\(harness.folder)/out")
        #expect(files.sorted() == winners.keys.map { "\($0).jsonl" }.sorted(), "only the shards' files: \(files)")
        let twice = Dictionary(grouping: acks, by: \.shard).values.filter { $0.count > 1 }.count
        print("outputs.directory: \(twice) shard(s) acked done twice; re-enqueues \(try await harness.reEnqueueReasons())")
    }

    @Test("A shard record with a hostile id (/../../tmp/x) is dead-lettered and creates nothing outside the folder")
    func hostileShardID() async throws {
        let harness = try await FleetHarness(samples: 20, samplesPerShard: 10, stage: "builtin: identity",
                                             outputs: "outputs: { results: true, directory: out }")
        try harness.submit()
        let target = "/tmp/flotilla-hostile-\(UUID().uuidString.prefix(8))"
        let record = ShardRecord(job: harness.job, shard: "/../..\(target)", source: .inline([InlineSample(id: "x", input: .string("x"))]), samples: 1)
        try await harness.publishGarbage(RecordCodec.shared.encode(record))
        try harness.startController(workers: 1)
        #expect(try await harness.waitForController(timeout: .seconds(60)) == 3, "the undecodable record counts as a dead shard")
        let letters = try await harness.deadLetters()
        #expect(letters.contains { $0.reason.contains("invalid shard id") }, "\(letters.map(\.reason))")
        #expect(!FileManager.default.fileExists(atPath: target) && !FileManager.default.fileExists(atPath: "\(target).jsonl"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(harness.folder)/out").sorted() == ["s000000.jsonl", "s000001.jsonl"])
    }

    static let sleepy = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '0.2']"

    @Test("Two broker pauses of 10 s with maxAttempts 2: the fleet rides them out, exit 0, no dead letter, nothing charged")
    func brokerOutages() async throws {
        let harness = try await FleetHarness(samples: 1_000, samplesPerShard: 50, stage: Self.sleepy,
                                             maxWorkers: 2, maxAttempts: 2)
        try harness.submit()
        try harness.startController(workers: 2)
        try await harness.waitForDoneShards(atLeast: 2, timeout: .seconds(60))
        for pause in 0..<2 {
            kill(harness.fixture.broker.pid, SIGSTOP)
            try await Task.sleep(for: .seconds(10))
            kill(harness.fixture.broker.pid, SIGCONT)
            if pause == 0 { try await Task.sleep(for: .seconds(2)) }
        }
        #expect(try await harness.waitForController(timeout: .seconds(180)) == 0, "\(harness.controllerOutput)")
        #expect(try await harness.deadLetters().isEmpty)
        let reasons = try await harness.reEnqueueReasons()
        #expect(reasons["worker-lost"] == nil && reasons["lease-expired"] == nil, "re-enqueues: \(reasons)")
        let (lines, status) = try harness.results()
        #expect(status == 0 && Set(lines.compactMap { $0["id"] as? String }) == Set(harness.samples))
    }

    @Test("One controller per job: a second one refuses (exit 2, naming the first); --take-over replaces it: the first stops its fleet before the new one starts")
    func oneControllerPerJob() async throws {
        let harness = try await FleetHarness(samples: 600, samplesPerShard: 50, stage: Self.sleepy, maxWorkers: 2)
        try harness.submit()
        try harness.startController(workers: 1)
        let first = try #require(harness.controller)
        try await harness.waitForDoneShards(atLeast: 1, timeout: .seconds(60))
        let started = ContinuousClock.now
        let second = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", harness.job, "--brokers", harness.brokers,
                                            "--log-dir", "\(harness.folder)/logs2"])
        #expect(second.status == 2, "\(second.stderr)")
        #expect(second.stderr.contains("already has a controller") && second.stderr.contains("pid \(first.processIdentifier)"), "\(second.stderr)")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(first.isRunning, "the first controller goes on")
        // Take over: the first one stops (exit 1, saying so), the new one finishes the job.
        try harness.startController(workers: 2, extra: ["--take-over"])
        let deadline = ContinuousClock.now + .seconds(30)
        while first.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!first.isRunning && first.terminationStatus == 1)
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 0)
        let errors = harness.controllerErrors(start: 1)
        #expect(errors.contains("was taken over by another controller"), "\(errors.suffix(2_000))")
        let (lines, status) = try harness.results()
        #expect(status == 0 && lines.count == 600)
        // The new fleet started after the old one stopped: no new worker fenced an old one.
        let logs = try harness.workerLogs()
        #expect(!logs.contains("fenced by a newer instance"), "\(logs.suffix(2_000))")
    }

    @Test("A shard record naming a file the job does not declare (/etc/passwd) is dead-lettered; nothing of it is published")
    func undeclaredSource() async throws {
        let harness = try await FleetHarness(samples: 20, samplesPerShard: 10, stage: "builtin: identity")
        try harness.submit()
        let range = ByteRange(offset: 0, length: 200, firstLine: 1, format: .jsonl)
        let forged = ShardRecord(job: harness.job, shard: "s000099", source: .lines(LineSource(location: .file(path: "/etc/passwd"), range: range)), samples: 3)
        try await harness.publishGarbage(RecordCodec.shared.encode(forged))
        try harness.startController(workers: 1)
        #expect(try await harness.waitForController(timeout: .seconds(60)) == 3)
        let letters = try await harness.deadLetters()
        #expect(letters.contains { $0.reason.contains("source not declared by the job: file /etc/passwd") }, "\(letters.map(\.reason))")
        let results = try await harness.rawReaderResults()
        #expect(results.count == 20 && !results.contains { $0.shard == "s000099" })
    }

    @Test("Manifest signing: a signed job runs; a forged or unsigned manifest is refused by a controller holding the key")
    func manifestSigning() async throws {
        let fixture = try await BrokerFixture()
        let (folder, spec) = try identityJob("signed", lines: (0..<20).map { #"{"id":"n\#($0)"}"# })
        let key = ["FLOTILLA_MANIFEST_KEY": "a-key-of-at-least-16-bytes"]
        let run = try CommandRunner.run([CommandRunner.flotillaExecutable, "run", spec, "--brokers", fixture.bootstrapServers, "--json"],
                                        environment: key, directory: folder)
        #expect(run.status == 0, "\(run.stderr)")
        let job = try #require(try JSONDecoder().decode(JobStatusSummary.self, from: Data(run.stdout.utf8)).job as String?)
        // Forge: the same job with another command and the old signature.
        let reader = try await TopicReader(client: fixture.client, topics: [TopicNames(job: job).jobs], isolation: .readUncommitted, logger: fixture.logger)
        let manifests = try await reader.readToEnd().filter { $0.keyString == job }
            .compactMap { try? RecordCodec.shared.decode(JobManifest.self, from: $0.value) }
        await reader.close()
        var forged = try #require(manifests.last)
        #expect(forged.signature?.hasPrefix("hmac-sha256:") == true)
        forged.status = .submitted
        forged.config.stages[0].predictor = .command(["sh", "-c", "touch /tmp/pwned"])
        try await fixture.producer().send(OutgoingMessage(topic: TopicNames(job: job).jobs, partition: 0, key: job,
                                                          value: RecordCodec.shared.encode(forged)))
        let refused = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", job, "--brokers", fixture.bootstrapServers],
                                            environment: key)
        #expect(refused.status == 2 && refused.stderr.contains("signature that does not match"), "\(refused.stderr)")
        forged.signature = nil
        try await fixture.producer().send(OutgoingMessage(topic: TopicNames(job: job).jobs, partition: 0, key: job,
                                                          value: RecordCodec.shared.encode(forged)))
        let unsigned = try CommandRunner.run([CommandRunner.flotillaExecutable, "worker", job, "--brokers", fixture.bootstrapServers],
                                             environment: key)
        #expect(unsigned.status == 2 && unsigned.stderr.contains("is not signed"), "\(unsigned.stderr)")
    }

    @Test("Secrets stay out of Kafka, command lines and logs: a properties file for SASL, passEnv for a predictor's token")
    func secrets() async throws {
        let fixture = try await BrokerFixture()
        let password = "S3CRET-\(UUID().uuidString.prefix(8))", token = "T0KEN-\(UUID().uuidString.prefix(8))"
        let (folder, _) = try identityJob("secret", lines: [])
        // In the spec: refused, naming the way that works.
        try """
            job: leaky
            inputs: [{inline: [{id: a, input: 1}]}]
            stages: [{name: echo, builtin: identity}]
            kafka: { properties: { sasl.password: \(password) } }
            """.write(toFile: "\(folder)/leaky.yaml", atomically: true, encoding: .utf8)
        let leaky = try CommandRunner.run([CommandRunner.flotillaExecutable, "submit", "\(folder)/leaky.yaml", "--dry-run"])
        #expect(leaky.status == 2 && leaky.stderr.contains("may not hold the secret 'sasl.password'"), "\(leaky.stderr)")
        #expect(!leaky.stderr.contains(password))

        try "# SASL credentials\nsasl.username=flotilla\nsasl.password=\(password)\n".write(toFile: "\(folder)/client.properties", atomically: true, encoding: .utf8)
        try """
            import os, time
            from flotilla_predictor import serve
            def predict(inputs):
                time.sleep(0.5)
                return [{"token": os.environ.get("MODEL_TOKEN") == "\(token)"} for _ in inputs]
            serve(predict)
            """.write(toFile: "\(folder)/secret_model.py", atomically: true, encoding: .utf8)
        let job = "secret-\(UUID().uuidString.prefix(6).lowercased())"
        try """
            job: \(job)
            inputs: [{file: in.jsonl}]
            shard: { samples: 2 }
            stages: [{name: m, predictor: [python3, secret_model.py], passEnv: [MODEL_TOKEN], env: { PYTHONPATH: \(CommandRunner.repositoryRoot)/python }}]
            workers: 1
            """.write(toFile: "\(folder)/job.yaml", atomically: true, encoding: .utf8)
        try ((0..<10).map { #"{"id":"s\#($0)"}"# }.joined(separator: "\n") + "\n").write(toFile: "\(folder)/in.jsonl", atomically: true, encoding: .utf8)
        let environment = ["FLOTILLA_KAFKA_PROPERTIES_FILE": "\(folder)/client.properties", "MODEL_TOKEN": token]
        let run = Task.detached {
            try CommandRunner.run([CommandRunner.flotillaExecutable, "run", "\(folder)/job.yaml", "--brokers", fixture.bootstrapServers,
                                   "--log-dir", "\(folder)/logs", "--out", "\(folder)/out.jsonl"], environment: environment, directory: folder)
        }
        var processes = ""
        for _ in 0..<30 where !processes.contains("flotilla worker") {
            try await Task.sleep(for: .milliseconds(200))
            processes = try CommandRunner.run(["ps", "-eo", "args"]).stdout
        }
        let output = try await run.value
        #expect(output.status == 0, "\(output.stderr)")
        #expect(processes.contains("flotilla worker \(job)"), "the process list was read while a worker ran")
        #expect(!processes.contains(password) && !processes.contains(token), "no secret on a command line")
        let lines = try String(contentsOfFile: "\(folder)/out.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 10 && lines.allSatisfy { $0.contains(#""token":true"#) }, "passEnv reached the predictor: \(lines.first ?? "")")
        // Every record of every topic of the job, and the shared jobs topic.
        let topics = TopicNames(job: job)
        let reader = try await TopicReader(client: fixture.client, topics: [topics.jobs] + topics.perJob, isolation: .readUncommitted, logger: fixture.logger)
        let records = try await reader.readToEnd().map { String(decoding: $0.value, as: UTF8.self) }.joined(separator: "\n")
        await reader.close()
        #expect(records.contains("MODEL_TOKEN") && !records.contains(token) && !records.contains(password), "no secret in Kafka")
        for name in try FileManager.default.contentsOfDirectory(atPath: "\(folder)/logs") {
            let path = "\(folder)/logs/\(name)"
            let mode = try #require(try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
            if name.hasSuffix(".log") || name == "kafka.properties" { #expect(mode & 0o077 == 0, "\(name) is \(String(mode, radix: 8))") }
            if name != "kafka.properties" {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                #expect(!text.contains(password) && !text.contains(token), "\(name) holds a secret")
            }
        }
        #expect(!output.stderr.contains(password) && !output.stdout.contains(password))
    }
}
