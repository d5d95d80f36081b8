import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

/// The mistakes a new user makes in the first hour, through the real executable: each is
/// answered in seconds, with the reason on the terminal and a documented exit status.
@Suite("First hour", .serialized, .timeLimit(.minutes(5)))
struct FirstHourTests {
    /// A folder with `in.jsonl` (`samples` lines) and a spec whose one stage runs `predictor`.
    private func job(_ name: String, samples: Int = 200, predictor: String, workers: Int = 2,
                     faults: String = "") throws -> (folder: String, spec: String, job: String) {
        let folder = try JobFolder("first")
        try folder.jsonLines(count: samples)
        let job = JobFolder.jobID(name)
        try folder.write("job.yaml", """
            job: \(job)
            inputs: [{file: in.jsonl}]
            shard: { samples: 20 }
            stages:
              - name: classify
                \(predictor)
                env: { PYTHONPATH: \(CommandRunner.repositoryRoot)/python }
            workers: { min: \(workers), max: \(workers) }
            \(faults)
            """)
        return (folder.path, "\(folder.path)/job.yaml", job)
    }

    private func run(_ spec: String, in folder: String, _ extra: [String] = []) throws -> (CommandRunner.Output, Duration) {
        let started = ContinuousClock.now
        let output = try CommandRunner.run([CommandRunner.flotillaExecutable, "run", spec] + extra, directory: folder)
        return (output, ContinuousClock.now - started)
    }

    @Test("A missing predictor script: exit 2 within 15 s, stderr names the script and the stage")
    func missingScript() throws {
        let (folder, spec, _) = try job("missing", predictor: "predictor: [python3, no_such_script.py]")
        let (output, took) = try run(spec, in: folder)
        #expect(output.status == 2, "stderr: \(output.stderr)")
        #expect(took < .seconds(15))
        #expect(output.stderr.contains("no_such_script.py") || output.stdout.contains("no_such_script.py"), "\(output.stdout) \(output.stderr)")
        #expect(output.stdout.contains("stage 'classify' cannot start"), "\(output.stdout)")
        #expect(FileManager.default.fileExists(atPath: "\(folder)/\(output.stderr.logFolder ?? "-")") || output.stderr.contains("logs in"),
                "a failed run keeps and names its log folder")
    }

    @Test("A predictor that prints to stdout before serve: exit 2, the message says what is wrong")
    func printBeforeServe() throws {
        let (folder, spec, _) = try job("chatty", predictor: "predictor: [python3, chatty.py]")
        try """
            print("Loading model...")
            from flotilla_predictor import serve
            serve(lambda inputs: inputs)
            """.write(toFile: "\(folder)/chatty.py", atomically: true, encoding: .utf8)
        let (output, took) = try run(spec, in: folder)
        #expect(output.status == 2, "stderr: \(output.stderr)")
        #expect(took < .seconds(15))
        #expect(output.stdout.contains("printing to stdout"), "\(output.stdout)")
    }

    @Test("Every sample fails: exit 4, the summary shows the most common error with its count")
    func allSamplesFail() throws {
        let (folder, spec, job) = try job("allfail", predictor: "predictor: [python3, none.py]", workers: 1)
        try """
            from flotilla_predictor import serve
            serve(lambda inputs: [])
            """.write(toFile: "\(folder)/none.py", atomically: true, encoding: .utf8)
        let (output, _) = try run(spec, in: folder, ["--json"])
        #expect(output.status == 4, "stderr: \(output.stderr)")
        let summary = try JSONDecoder().decode(JobStatusSummary.self, from: Data(output.stdout.utf8))
        #expect(summary.failedSamples == 200)
        #expect(summary.failure?.kind == .errorBudget)
        let top = try #require(summary.topErrors?.first)
        #expect(top.count == 200 && top.message.contains("predict returned 0 outputs"), "\(top)")
        #expect(output.stderr.contains("most common errors") && output.stderr.contains("200 ×"), "\(output.stderr)")
        #expect(FileManager.default.fileExists(atPath: "\(folder)/\(job).results.jsonl"))
    }

    @Test("run --out: one JSON line per sample with sorted keys; the summary names the file; a clean run leaves no log folder")
    func runOut() throws {
        let (folder, spec, job) = try job("out", predictor: "builtin: identity")
        let (output, _) = try run(spec, in: folder, ["--out", "\(folder)/predictions.jsonl", "--json"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        let lines = try String(contentsOfFile: "\(folder)/predictions.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 200)
        let ids = Set(lines.compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["id"] as? String
        })
        #expect(ids == Set((0..<200).map { "s\($0)" }))
        #expect(lines.allSatisfy { $0.hasPrefix(#"{"id":"#) && $0.contains(#""output":{"id":"#) }, "sorted keys: \(lines[0])")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any])
        #expect(summary["results"] as? String == "\(folder)/predictions.jsonl")
        #expect(output.stderr.contains("200 lines (0 errors) in \(folder)/predictions.jsonl"), "\(output.stderr)")
        #expect(!FileManager.default.fileExists(atPath: "\(folder)/\(job).results.jsonl"), "--out replaces the default file")
        let logs = FileManager.default.temporaryDirectory.path
        let left = try FileManager.default.contentsOfDirectory(atPath: logs).filter { $0.hasPrefix("flotilla-run-\(job)-") }
        #expect(left.isEmpty, "a clean run removes its temporary log folder: \(left)")
        #expect(output.stderr.contains("progress: 200/200 samples") && output.stderr.contains("re-enqueued 0"), "\(output.stderr)")
    }

    @Test("controller on an unknown job: exit 2 within 5 s, naming the job (no jobs topic, and a jobs topic without it)")
    func unknownJob() async throws {
        let fixture = try await BrokerFixture()
        for round in 0..<2 {
            if round == 1 {
                let jobs = TopicNames(job: "other").jobs
                try await fixture.admin().createTopics([TopicSpecification(name: jobs, partitions: 1, replicationFactor: -1)])
            }
            let started = ContinuousClock.now
            let output = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "no-such-job", "--brokers", fixture.bootstrapServers])
            #expect(output.status == 2, "round \(round): \(output.stderr)")
            #expect(ContinuousClock.now - started < .seconds(5), "round \(round)")
            #expect(output.stderr.contains("job 'no-such-job' not found"), "round \(round): \(output.stderr)")
        }
    }

    @Test("Ctrl-C: the fleet stops, the results so far are written and named, exit 1")
    func interrupt() async throws {
        let (folder, spec, job) = try job("interrupt", samples: 1_000, predictor: "predictor: [python3, slow.py]", workers: 1)
        try """
            import time
            from flotilla_predictor import serve
            def predict(inputs):
                with open("batches.log", "a") as log: log.write("b\\n")
                time.sleep(0.02 * len(inputs))
                return inputs
            serve(predict)
            """.write(toFile: "\(folder)/slow.py", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandRunner.flotillaExecutable)
        process.arguments = ["run", spec]
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = ContinuousClock.now + .seconds(60)
        while ((try? String(contentsOfFile: "\(folder)/batches.log", encoding: .utf8))?.count ?? 0) < 10, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        kill(process.processIdentifier, SIGINT)
        let output = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1, "\(output)")
        #expect(output.contains("stopped before the job finished"), "\(output)")
        #expect(output.contains("in \(job).results.jsonl (partial"), "\(output)")
        let lines = try String(contentsOfFile: "\(folder)/\(job).results.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(lines.count < 1_000)
    }

    @Test("run --resume carries on a job submitted before; without it, the refusal names --resume")
    func resume() async throws {
        let fixture = try await BrokerFixture()
        let (folder, spec, _) = try job("resume", predictor: "builtin: identity", workers: 1)
        let submit = try CommandRunner.run([CommandRunner.flotillaExecutable, "submit", spec, "--brokers", fixture.bootstrapServers])
        #expect(submit.status == 0, "\(submit.stderr)")
        let (again, _) = try run(spec, in: folder, ["--brokers", fixture.bootstrapServers])
        #expect(again.status == 2 && again.stderr.contains("--resume"), "\(again.stderr)")
        let (resumed, _) = try run(spec, in: folder, ["--brokers", fixture.bootstrapServers, "--resume", "--json"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let summary = try JSONDecoder().decode(JobStatusSummary.self, from: Data(resumed.stdout.utf8))
        #expect(summary.done == 10 && summary.samples == 200)
        #expect(resumed.stderr.contains("results stay in Kafka: flotilla results"), "\(resumed.stderr)")
    }

    @Test("Every command's --help has an example; one option vocabulary (positional job id, --prefix, --kafka-property, --timeout)")
    func helpAndVocabulary() throws {
        for command in ["run", "submit", "status", "results", "cancel", "scale", "controller", "worker", "broker"] {
            let help = try CommandRunner.run([CommandRunner.flotillaExecutable, command, "--help"])
            #expect(help.status == 0)
            #expect(help.stdout.contains("Example"), "\(command) --help has no example")
            #expect(!help.stdout.contains("submit falls back"), "\(command) --help")
            if command != "broker" {
                for option in ["--brokers", "--kafka-property", "--timeout"] {
                    #expect(help.stdout.contains(option), "\(command) --help lacks \(option)")
                }
            }
            if ["status", "results", "cancel", "scale", "controller", "worker"].contains(command) {
                #expect(help.stdout.contains("<job>") && help.stdout.contains("--prefix"), "\(command) --help: \(help.stdout)")
            }
        }
        let version = try CommandRunner.run([CommandRunner.flotillaExecutable, "--version"])
        #expect(version.status == 0 && version.stdout.hasPrefix("flotilla "))
        // A missing --brokers is a configuration error (exit 2) for every command that needs one.
        for arguments in [["status", "j"], ["controller", "j"], ["results", "j"]] {
            let output = try CommandRunner.run([CommandRunner.flotillaExecutable] + arguments)
            #expect(output.status == 2, "\(arguments): \(output.status) \(output.stderr)")
        }
    }
}

private extension String {
    /// The folder named by "logs in FOLDER".
    var logFolder: String? {
        guard let range = range(of: "logs in ") else { return nil }
        return String(self[range.upperBound...].prefix { !$0.isNewline && $0 != ")" })
    }
}
