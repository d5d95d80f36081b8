import EmbeddedBroker
import FlotillaCore
import FlotillaJobs
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

@Suite("flotilla submit (the built binary)", .timeLimit(.minutes(3)))
struct SubmitCommandTests {
    static var quickstart: String { CommandRunner.repositoryRoot + "/config/examples/quickstart.yaml" }

    @Test("quickstart: the job id is the last line; kcat shows the shard records PROTOCOL.md describes")
    func quickstart() async throws {
        let fixture = try await BrokerFixture()
        let folder = try TemporaryFolder()
        // Run from elsewhere: the spec's relative paths resolve against its own folder.
        let run = try JobsTest.flotilla(["submit", Self.quickstart, "--brokers", fixture.bootstrapServers], directory: folder.path)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.last == "digits-quickstart")
        #expect(run.stdout.contains("1797 samples, 18 shards"))

        let kcat = try CommandRunner.run(["kcat", "-C", "-b", fixture.bootstrapServers, "-t", "flotilla.digits-quickstart.shards",
                                          "-e", "-q", "-f", "%k %s\\n"])
        #expect(kcat.status == 0, "kcat: \(kcat.stderr)")
        let records = kcat.stdout.split(separator: "\n")
        #expect(records.count == 18)
        var samples = 0
        var ids: Set<String> = []
        for record in records {
            let space = try #require(record.firstIndex(of: " "))
            let key = String(record[..<space])
            let object = try #require(try JSONSerialization.jsonObject(with: Data(record[record.index(after: space)...].utf8)) as? [String: Any])
            #expect(object["shard"] as? String == key, "keyed by shard id")
            #expect(object["v"] as? Int == 1)
            #expect(object["job"] as? String == "digits-quickstart")
            #expect(object["attempt"] as? Int == 0)
            #expect(object["reason"] as? String == "initial")
            #expect(object["createdAt"] is Int)
            let source = try #require(object["source"] as? [String: Any])
            #expect(source["kind"] as? String == "file")
            #expect((source["path"] as? String)?.hasSuffix("/.tools/data/digits.jsonl") == true)
            #expect((source["path"] as? String)?.hasPrefix("/") == true, "absolute path")
            #expect(source["offset"] is Int && source["length"] is Int && source["firstLine"] is Int)
            #expect(source["format"] as? String == "jsonl")
            samples += object["samples"] as? Int ?? 0
            ids.insert(key)
        }
        #expect(samples == 1797)
        #expect(ids == Set((0..<18).map(ShardRecord.shardID(index:))))

        let again = try JobsTest.flotilla(["submit", Self.quickstart, "--brokers", fixture.bootstrapServers])
        #expect(again.status == 2)
        #expect(again.stderr.contains("already submitted"))
        let resumed = try JobsTest.flotilla(["submit", Self.quickstart, "--brokers", fixture.bootstrapServers, "--resume"])
        #expect(resumed.status == 0)
        #expect(resumed.stdout.split(separator: "\n").last == "digits-quickstart")
        let after = try CommandRunner.run(["kcat", "-C", "-b", fixture.bootstrapServers, "-t", "flotilla.digits-quickstart.shards", "-e", "-q", "-f", "%k\\n"])
        #expect(after.stdout.split(separator: "\n").count == 18, "--resume published nothing")
    }

    @Test("--dry-run prints one line per shard and publishes nothing")
    func dryRun() async throws {
        let fixture = try await BrokerFixture()
        let run = try JobsTest.flotilla(["submit", Self.quickstart, "--brokers", fixture.bootstrapServers, "--dry-run"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let lines = run.stdout.split(separator: "\n").map(String.init)
        #expect(lines.last == "digits-quickstart")
        let shardLines = lines.filter { $0.hasPrefix("s0") }
        #expect(shardLines.count == 18)
        #expect(shardLines.first?.contains("digits.jsonl bytes 0-") == true)
        #expect(shardLines.first?.hasSuffix("samples 100") == true)
        #expect(try await JobsTest.topics(fixture, prefix: "flotilla").isEmpty, "no topic was created")
        // No broker at all is fine for a dry run.
        let offline = try JobsTest.flotilla(["submit", Self.quickstart, "--dry-run"])
        #expect(offline.status == 0)
    }

    @Test("An input error (missing file, unreachable URL, oversize inline sample) exits 2 and publishes nothing")
    func inputErrorsPublishNothing() async throws {
        let fixture = try await BrokerFixture()
        let folder = try TemporaryFolder()
        let closedPort = try FreePort.find()
        let cases: [(String, String, String)] = [
            ("missing", "  - file: nowhere.jsonl", "nowhere.jsonl"),
            ("http", "  - url: http://127.0.0.1:\(closedPort)/data.jsonl", "127.0.0.1:\(closedPort)"),
            ("inline", "  - inline: [{id: big, input: \"\(String(repeating: "z", count: 3000))\"}]", "'big'"),
        ]
        for (name, inputs, mention) in cases {
            let job = JobsTest.jobID(name)
            let spec = try folder.write("\(name).yaml", JobsTest.spec(job: job, inputs: inputs, samplesPerShard: 10, extra: "kafka:\n  maxMessageBytes: 2000"))
            let run = try JobsTest.flotilla(["submit", spec, "--brokers", fixture.bootstrapServers])
            #expect(run.status == 2, "\(name): \(run.stderr)")
            #expect(run.stderr.contains(mention), "\(name): \(run.stderr)")
            #expect(try await JobsTest.topics(fixture, prefix: "flotilla.\(job)").isEmpty, "\(name): no topics")
        }
        #expect(try await JobsTest.readAll(fixture, ["flotilla.jobs"]).isEmpty, "no manifest")
    }

    @Test("Exit codes: bad spec 2 (a misspelt builtin too), no brokers 2, unreachable broker 1 within the timeout")
    func exitCodes() async throws {
        let folder = try TemporaryFolder()
        let bad = try folder.write("bad.yaml", "job: x\ninputs: []\nstages: []\n")
        let badRun = try JobsTest.flotilla(["submit", bad, "--brokers", "127.0.0.1:1"])
        #expect(badRun.status == 2)
        #expect(badRun.stderr.contains("bad.yaml"))
        // A misspelt builtin is refused by submit, as by run, before anything is published.
        let data = try folder.write("data.jsonl", "{\"id\": \"a\"}\n")
        let misspelt = try folder.write("misspelt.yaml", "job: x\ninputs: [{file: \(data)}]\nstages:\n  - name: s\n    builtin: identiy\n")
        let misspeltRun = try JobsTest.flotilla(["submit", misspelt, "--dry-run"])
        #expect(misspeltRun.status == 2)
        #expect(misspeltRun.stderr.contains("identiy"), "\(misspeltRun.stderr)")

        let noBrokers = try JobsTest.flotilla(["submit", Self.quickstart])
        #expect(noBrokers.status == 2)
        #expect(noBrokers.stderr.contains("--brokers"))
        #expect(noBrokers.stderr.contains("kafka.brokers"))

        let port = try FreePort.find()
        let started = ContinuousClock.now
        let unreachable = try JobsTest.flotilla(["submit", Self.quickstart, "--brokers", "127.0.0.1:\(port)", "--timeout", "2"])
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.contains("127.0.0.1:\(port)"))
        #expect(unreachable.stderr.contains("is the broker running"))
        #expect(ContinuousClock.now - started < .seconds(10))
        // Refused outright: answered in about a second, not after the whole timeout.
        let refusedAt = ContinuousClock.now
        let refused = try JobsTest.flotilla(["status", "some-job", "--brokers", "127.0.0.1:\(port)", "--timeout", "10"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("Connection refused"), "\(refused.stderr)")
        #expect(ContinuousClock.now - refusedAt < .seconds(4))

        let statusNoBrokers = try JobsTest.flotilla(["status", "some-job"])
        #expect(statusNoBrokers.status == 2)
    }

    @Test("A --brokers value that is not host:port is refused at once (exit 2), naming the value, for every command")
    func badBrokersSyntax() throws {
        for arguments in [["submit", Self.quickstart], ["status", "some-job"], ["results", "some-job"],
                          ["controller", "some-job"], ["worker", "some-job"]] {
            for brokers in ["http://127.0.0.1:9092", "127.0.0.1", "127.0.0.1:99999"] {
                let started = ContinuousClock.now
                let run = try JobsTest.flotilla(arguments + ["--brokers", brokers])
                #expect(run.status == 2, "\(arguments) --brokers \(brokers): \(run.stderr)")
                #expect(run.stderr.contains("'\(brokers)'"), "\(arguments): \(run.stderr)")
                #expect(ContinuousClock.now - started < .seconds(3))
            }
        }
    }

    @Test("flotilla --version prints the version")
    func version() throws {
        let run = try JobsTest.flotilla(["--version"])
        #expect(run.status == 0)
        #expect(run.stdout.hasPrefix("flotilla "))
    }
}
