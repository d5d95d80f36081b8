import FlotillaCore
import FlotillaJobs
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

/// A submitted job of three inline shards (a0-a2, b0-b2, c0-c2) on a fresh broker, with helpers
/// to publish acks and results as workers would.
struct SubmittedJob {
    let fixture: BrokerFixture
    let folder: TemporaryFolder
    let config: JobConfig
    let specPath: String
    var job: String { config.job }
    var topics: TopicNames { config.topics }

    static let samples = [["a0", "a1", "a2"], ["b0", "b1", "b2"], ["c0", "c1", "c2"]]

    static func make(_ prefix: String) async throws -> SubmittedJob {
        let fixture = try await BrokerFixture()
        let folder = try TemporaryFolder()
        let inline = samples.flatMap { $0 }.map { "{id: \($0), input: \"\($0)\"}" }.joined(separator: ", ")
        let (config, path) = try JobsTest.load(
            JobsTest.spec(job: JobsTest.jobID(prefix), inputs: "  - inline: [\(inline)]", samplesPerShard: 3, extra: "kafka:\n  partitions: 3"),
            in: folder)
        let submitter = JobSubmitter(logger: JobsTest.logger)
        _ = try await submitter.submit(try await submitter.plan(config), to: JobsTest.connection(fixture))
        return SubmittedJob(fixture: fixture, folder: folder, config: config, specPath: path)
    }

    func results(shard: Int, attempt: Int, run: String, ids: [String]? = nil, tag: String = "") -> [OutgoingMessage] {
        let shardID = ShardRecord.shardID(index: shard)
        return (ids ?? Self.samples[shard]).map { id in
            let record = ResultRecord(job: job, id: id, shard: shardID, attempt: attempt, run: run, outcome: .output(JSONBytes(.string("\(id)\(tag)"))))
            return JobsTest.message(record, topic: topics.results, key: id, attempt: attempt)
        }
    }

    /// The same results as `results(...)`, as one batch record (what workers write).
    func batch(shard: Int, attempt: Int, run: String, tag: String = "") -> OutgoingMessage {
        let shardID = ShardRecord.shardID(index: shard)
        let records = Self.samples[shard].map { id in
            ResultRecord(job: job, id: id, shard: shardID, attempt: attempt, run: run, outcome: .output(JSONBytes(.string("\(id)\(tag)"))))
        }
        return JobsTest.message(ResultBatch(records), topic: topics.results, key: shardID, attempt: attempt)
    }

    func errorResult(shard: Int, attempt: Int, run: String, id: String, message: String) -> OutgoingMessage {
        let record = ResultRecord(job: job, id: id, shard: ShardRecord.shardID(index: shard), attempt: attempt, run: run,
                                  outcome: .error(message), stage: "echo")
        return JobsTest.message(record, topic: topics.results, key: id, attempt: attempt)
    }

    func ack(shard: Int, attempt: Int, run: String, status: AckStatus = .done, errors: Int = 0) -> OutgoingMessage {
        let shardID = ShardRecord.shardID(index: shard)
        let record = AckRecord(job: job, shard: shardID, attempt: attempt, run: run, worker: "w-\(run)",
                               samples: Self.samples[shard].count, errorSamples: errors, status: status,
                               error: status == .failed ? "predictor exited" : nil, startedAt: Timestamp.now() - 50)
        return JobsTest.message(record, topic: topics.acks, key: shardID, attempt: attempt)
    }

    func deadLetter(shard: Int) -> OutgoingMessage {
        let shardID = ShardRecord.shardID(index: shard)
        let record = DeadLetterRecord(job: job, shard: shardID, attempt: 2, reason: "failed 3 attempts: predictor exited", from: "controller")
        return JobsTest.message(record, topic: topics.dlq, key: shardID)
    }

    /// Publishes `messages` in one transaction, as a worker publishes a shard's results and ack.
    func publishTransaction(_ messages: [OutgoingMessage], id: String) async throws {
        let producer = try fixture.producer(transactionalID: "test-\(id)-\(UUID().uuidString.prefix(6))")
        try await producer.initTransactions()
        try producer.beginTransaction()
        for message in messages { try producer.enqueue(message) }
        try await producer.commitTransaction()
    }

    func reader() -> ResultsReader {
        ResultsReader(connection: JobsTest.connection(fixture), prefix: config.kafka.topicPrefix, job: job, logger: JobsTest.logger)
    }
}

@Suite("ResultsReader applies the reader rule", .timeLimit(.minutes(3)))
struct ResultsReaderTests {
    @Test("Two runs of a shard, results of an unacked run, a failed ack, results before their ack: one line per sample")
    func readerRule() async throws {
        let job = try await SubmittedJob.make("rule")
        let producer = try job.fixture.producer()
        // Shard 0: run A acked first (in one transaction); a speculative run B acked later.
        try await job.publishTransaction(job.results(shard: 0, attempt: 0, run: "A") + [job.ack(shard: 0, attempt: 0, run: "A")], id: "A")
        try await job.publishTransaction(job.results(shard: 0, attempt: 1, run: "B", tag: "-late") + [job.ack(shard: 0, attempt: 1, run: "B")], id: "B")
        // Shard 1: a zombie run X without an ack; run Y failed (its partial results must not
        // count); run Z's results arrive before its ack, with one sample published twice.
        try await producer.send(job.results(shard: 1, attempt: 0, run: "X", tag: "-zombie"))
        try await producer.send(job.results(shard: 1, attempt: 0, run: "Y", ids: ["b0"], tag: "-failed")
                                + [job.ack(shard: 1, attempt: 0, run: "Y", status: .failed)])
        try await producer.send(job.results(shard: 1, attempt: 1, run: "Z", ids: ["b0", "b1"])
                                + [job.errorResult(shard: 1, attempt: 1, run: "Z", id: "b2", message: "bad input")]
                                + job.results(shard: 1, attempt: 1, run: "Z", ids: ["b1"], tag: "-again"))
        try await producer.send(job.ack(shard: 1, attempt: 1, run: "Z", errors: 1))
        // Shard 2: never done, dead-lettered; a stray result of it must not appear.
        try await producer.send(job.results(shard: 2, attempt: 0, run: "Q", ids: ["c0"]) + [job.deadLetter(shard: 2)])

        var lines: [ResultRecord] = []
        let summary = try await job.reader().read { lines.append($0) }
        let ids = lines.map(\.id)
        #expect(ids.count == 6, "one line per sample of the two done shards: \(ids)")
        #expect(Set(ids) == ["a0", "a1", "a2", "b0", "b1", "b2"])
        let byID = Dictionary(uniqueKeysWithValues: lines.map { ($0.id, $0) })
        #expect(byID["a0"]?.output == .string("a0"), "run A won shard 0, not the later run B")
        #expect(byID["a0"]?.run == "A")
        #expect(byID["b0"]?.output == .string("b0"), "run Z's result, not the zombie's or the failed run's")
        #expect(byID["b1"]?.output == .string("b1"), "the first of a duplicated result")
        #expect(byID["b2"]?.error == "bad input")
        #expect(summary.samples == 6 && summary.errors == 1)
        #expect(summary.shardsDone == 2 && summary.shards == 3)
        #expect(summary.deadShards == ["s000002"])
        #expect(summary.missingShards.isEmpty)
        #expect(summary.incompleteShards.isEmpty)
        #expect(!summary.isComplete)
    }

    @Test("flotilla results --out writes one JSON line per sample through a temporary file; exit 0 when complete")
    func cliResultsComplete() async throws {
        let job = try await SubmittedJob.make("cli-results")
        for shard in 0..<3 {
            try await job.publishTransaction(job.results(shard: shard, attempt: 0, run: "r\(shard)") + [job.ack(shard: shard, attempt: 0, run: "r\(shard)")],
                                             id: "r\(shard)")
        }
        let out = (job.folder.path as NSString).appendingPathComponent("results.jsonl")
        let run = try JobsTest.flotilla(["results", job.job, "--brokers", job.fixture.bootstrapServers, "--out", out])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.contains("9 samples (0 errors) from 3 of 3 shards done"))
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 9)
        var ids: [String] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let id = try #require(object["id"] as? String)
            ids.append(id)
            #expect(object["output"] as? String == id)
            #expect((object["shard"] as? String)?.hasPrefix("s00000") == true)
            #expect(object["error"] == nil)
        }
        #expect(Set(ids) == Set(SubmittedJob.samples.flatMap { $0 }))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: job.folder.path).filter { $0.contains(".tmp-") }
        #expect(leftovers.isEmpty, "the temporary file was renamed into place")
    }

    @Test("flotilla results on an incomplete job: exit 3, a warning naming the missing and dead-lettered shards")
    func cliResultsIncomplete() async throws {
        let job = try await SubmittedJob.make("cli-partial")
        try await job.publishTransaction(job.results(shard: 0, attempt: 0, run: "r") + [job.ack(shard: 0, attempt: 0, run: "r")], id: "r")
        try await job.fixture.producer().send(job.deadLetter(shard: 2))
        let run = try JobsTest.flotilla(["results", job.job, "--brokers", job.fixture.bootstrapServers])
        #expect(run.status == 3, "stderr: \(run.stderr)")
        #expect(run.stdout.split(separator: "\n").count == 3)
        #expect(run.stderr.contains("warning: job \(job.job) is incomplete"))
        #expect(run.stderr.contains("1 dead-lettered (s000002)"))
        #expect(run.stderr.contains("1 not done (s000001)"))
    }

    // What a reader meets when a transaction's marker reached the acks partition before the
    // results partition: a done ack whose results are not readable yet.
    @Test("A done shard whose results become readable only after the ack is read on for, then complete; named when it never settles")
    func resultsStillSettling() async throws {
        let job = try await SubmittedJob.make("settling")
        let producer = try job.fixture.producer()
        for shard in 0..<2 {
            try await job.publishTransaction([job.batch(shard: shard, attempt: 0, run: "r\(shard)"), job.ack(shard: shard, attempt: 0, run: "r\(shard)")], id: "r\(shard)")
        }
        try await producer.send(job.ack(shard: 2, attempt: 0, run: "late"))
        let late = Task {
            try await Task.sleep(for: .seconds(1.5))
            try await producer.send(job.batch(shard: 2, attempt: 0, run: "late"))
        }
        var ids = Set<String>()
        let summary = try await job.reader().read { result throws(FlotillaError) in ids.insert(result.id) }
        try await late.value
        #expect(summary.isComplete)
        #expect(summary.settleRounds > 0, "the first read ended before shard 2's results were there")
        #expect(ids == Set(SubmittedJob.samples.flatMap { $0 }))

        // A shard that never settles is named once the settle time is over.
        let other = try await SubmittedJob.make("never-settles")
        try await other.fixture.producer().send(other.ack(shard: 0, attempt: 0, run: "never"))
        var otherReader = other.reader()
        otherReader.settleTime = .milliseconds(500)
        let unsettled = try await otherReader.read { _ throws(FlotillaError) in }
        #expect(unsettled.incompleteShards == ["s000000"])
        #expect(!unsettled.isComplete)
    }

    @Test("Batch records and single records (older workers) of one job both count, by the same rule")
    func batchesAndSingles() async throws {
        let job = try await SubmittedJob.make("batches")
        try await job.publishTransaction([job.batch(shard: 0, attempt: 0, run: "A"), job.ack(shard: 0, attempt: 0, run: "A")], id: "A")
        try await job.publishTransaction(job.results(shard: 1, attempt: 0, run: "B") + [job.ack(shard: 1, attempt: 0, run: "B")], id: "B")
        // Shard 2: a zombie's batch (never acked), then the winner's.
        try await job.fixture.producer().send(job.batch(shard: 2, attempt: 0, run: "Z", tag: "-zombie"))
        try await job.publishTransaction([job.batch(shard: 2, attempt: 1, run: "C"), job.ack(shard: 2, attempt: 1, run: "C")], id: "C")
        var lines: [String: String] = [:]
        let summary = try await job.reader().read { result throws(FlotillaError) in lines[result.id] = result.output?.stringValue }
        #expect(summary.isComplete)
        #expect(summary.samples == 9)
        #expect(summary.discarded == 3)
        #expect(lines == Dictionary(uniqueKeysWithValues: SubmittedJob.samples.flatMap { $0 }.map { ($0, $0) }))
    }

    @Test("flotilla results of an unknown job: exit 2 naming the job")
    func unknownJob() async throws {
        let fixture = try await BrokerFixture()
        let run = try JobsTest.flotilla(["results", "no-such-job", "--brokers", fixture.bootstrapServers])
        #expect(run.status == 2)
        #expect(run.stderr.contains("no job 'no-such-job'"))
    }
}
