import FlotillaCore
import FlotillaJobs
import FlotillaKafka
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

@Suite("JobSubmitter against the embedded broker", .timeLimit(.minutes(3)))
struct JobSubmitterTests {
    @Test("Submit publishes exactly the planned shards, spread round-robin over partitions, then the manifest")
    func publishesPlanThenManifest() async throws {
        let fixture = try await BrokerFixture()
        let folder = try TemporaryFolder()
        try folder.jsonLines("data.jsonl", count: 95)
        let job = JobsTest.jobID("submit")
        let (config, _) = try JobsTest.load(
            JobsTest.spec(job: job, inputs: "  - file: data.jsonl\n  - inline: [{id: i1, input: 1}, {id: i2, input: 2}, {id: i3, input: 3}]",
                          samplesPerShard: 10, extra: "kafka:\n  partitions: 4"), in: folder)
        let submitter = JobSubmitter(logger: JobsTest.logger)
        let plan = try await submitter.plan(config)
        #expect(plan.shards.count == 11, "95 lines in 10 shards of up to 10, plus one inline shard")
        #expect(plan.samples == 98)
        #expect(plan.inputs.map(\.samples) == [95, 3])
        #expect(plan.shards.map(\.shard) == (0..<11).map { String(format: "s%06d", $0) })

        let report = try await submitter.submit(plan, to: JobsTest.connection(fixture))
        #expect(report.shardsPublished == 11)
        #expect(report.manifestPublished)
        #expect(report.shardPartitions == 4)

        let topics = config.topics
        let partitions = try await JobsTest.topics(fixture, prefix: "flotilla.")
        #expect(partitions[topics.shards] == 4)
        #expect(partitions[topics.results] == 1, "kafka.resultPartitions defaults to 1")
        for topic in [topics.acks, topics.heartbeats, topics.control, topics.dlq, topics.jobs] {
            #expect(partitions[topic] == 1, "\(topic) has one partition")
        }

        let shardMessages = try await JobsTest.readAll(fixture, [topics.shards])
        #expect(shardMessages.count == 11, "each planned shard exactly once")
        var seen: [String: ShardRecord] = [:]
        for message in shardMessages {
            let record = try RecordCodec.shared.decode(ShardRecord.self, from: message.value)
            #expect(message.keyString == record.shard)
            #expect(message.header(RecordHeaders.type) == Array("shard".utf8))
            #expect(message.header(RecordHeaders.attempt) == Array("0".utf8))
            #expect(message.header(RecordHeaders.version) == Array("1".utf8))
            let index = Int(record.shard.dropFirst())!
            #expect(message.partition == Int32(index % 4), "\(record.shard) in partition index mod 4")
            #expect(record.attempt == 0 && record.reason == .initial && record.job == job)
            seen[record.shard] = record
        }
        #expect(Set(seen.keys) == Set(plan.shards.map(\.shard)))
        for shard in plan.shards {
            #expect(seen[shard.shard]?.source == shard.source)
            #expect(seen[shard.shard]?.samples == shard.samples)
        }
        #expect(seen.values.reduce(0) { $0 + ($1.samples ?? 0) } == 98)

        let jobMessages = try await JobsTest.readAll(fixture, [topics.jobs])
        #expect(jobMessages.count == 1)
        let manifest = try RecordCodec.shared.decode(JobManifest.self, from: jobMessages[0].value)
        #expect(jobMessages[0].keyString == job)
        #expect(manifest.status == .submitted && manifest.shards == 11 && manifest.samples == 98)
        #expect(manifest.config == config)
        // Published last: its broker timestamp is not before any shard record's.
        let lastShard = shardMessages.compactMap(\.timestamp).max() ?? 0
        #expect((jobMessages[0].timestamp ?? 0) >= lastShard)
    }

    @Test("A second submit of the same job id is refused (exit 2); --resume publishes nothing new")
    func secondSubmitRefusedResumeIsNoop() async throws {
        let fixture = try await BrokerFixture()
        let folder = try TemporaryFolder()
        try folder.jsonLines("data.jsonl", count: 30)
        let (config, _) = try JobsTest.load(JobsTest.spec(job: JobsTest.jobID("again"), inputs: "  - file: data.jsonl", samplesPerShard: 10), in: folder)
        let submitter = JobSubmitter(logger: JobsTest.logger)
        let plan = try await submitter.plan(config)
        _ = try await submitter.submit(plan, to: JobsTest.connection(fixture))

        let error = await #expect(throws: FlotillaError.self) {
            _ = try await submitter.submit(plan, to: JobsTest.connection(fixture))
        }
        #expect(error?.exitCode == 2)
        #expect(error?.message.contains("already submitted") == true)
        #expect(error?.message.contains("--resume") == true)

        let resumed = try await submitter.submit(plan, to: JobsTest.connection(fixture), resume: true)
        #expect(resumed.alreadySubmitted)
        #expect(resumed.shardsPublished == 0 && !resumed.manifestPublished)
        #expect(try await JobsTest.readAll(fixture, [config.topics.shards]).count == 3)
        #expect(try await JobsTest.readAll(fixture, [config.topics.jobs]).count == 1)
    }

    @Test("An interrupted submit (shards, no manifest) is refused; --resume publishes only the missing shards, then the manifest")
    func interruptedSubmitResumes() async throws {
        let fixture = try await BrokerFixture()
        let folder = try TemporaryFolder()
        try folder.jsonLines("data.jsonl", count: 50)
        let (config, _) = try JobsTest.load(
            JobsTest.spec(job: JobsTest.jobID("interrupted"), inputs: "  - file: data.jsonl", samplesPerShard: 10, extra: "kafka:\n  partitions: 2"),
            in: folder)
        let submitter = JobSubmitter(logger: JobsTest.logger)
        let plan = try await submitter.plan(config)
        // What a submit that died after two shard records leaves behind.
        try await BrokerAdmin(connection: JobsTest.connection(fixture), logger: JobsTest.logger).createTopics(for: config)
        try await fixture.producer().send(plan.shards.prefix(2).enumerated().map { index, shard in
            JobsTest.message(shard, topic: config.topics.shards, key: shard.shard, partition: Int32(index % 2), attempt: 0)
        })

        let error = await #expect(throws: FlotillaError.self) {
            _ = try await submitter.submit(plan, to: JobsTest.connection(fixture))
        }
        #expect(error?.exitCode == 2)
        #expect(error?.message.contains("stopped before its manifest") == true)
        #expect(try await JobsTest.readAll(fixture, [config.topics.jobs]).isEmpty)

        let report = try await submitter.submit(plan, to: JobsTest.connection(fixture), resume: true)
        #expect(report.shardsAlreadyPresent == 2 && report.shardsPublished == 3 && report.manifestPublished)
        let shards = try await JobsTest.readAll(fixture, [config.topics.shards])
        #expect(shards.count == 5)
        #expect(Set(shards.compactMap(\.keyString)) == Set(plan.shards.map(\.shard)))
        #expect(try await JobsTest.readAll(fixture, [config.topics.jobs]).count == 1)
    }

    @Test("Shard records over kafka.maxMessageBytes are a clear error before anything is published")
    func oversizeShardRecord() async throws {
        let folder = try TemporaryFolder()
        // A CSV header of 3 000 bytes is carried in every shard record: over a 2 000-byte limit.
        let columns = ["id"] + (0..<300).map { "column\($0)" }
        let row = (0..<columns.count).map { String($0) }.joined(separator: ",")
        try folder.write("wide.csv", columns.joined(separator: ",") + "\n" + row + "\n")
        let (config, _) = try JobsTest.load(
            JobsTest.spec(job: "wide", inputs: "  - file: wide.csv", samplesPerShard: 10,
                          extra: "kafka:\n  maxMessageBytes: 2000").replacingOccurrences(of: "samples: 10", with: "samples: 10\n  maxSampleBytes: 100000"), in: folder)
        let error = await #expect(throws: FlotillaError.self) {
            _ = try await JobSubmitter(logger: JobsTest.logger).plan(config)
        }
        #expect(error?.exitCode == 2)
        #expect(error?.message.contains("s000000") == true)
        #expect(error?.message.contains("kafka.maxMessageBytes (2000)") == true)
    }

    @Test("Inline inputs are cut to fit kafka.maxMessageBytes; one sample too big alone is an input error")
    func inlineBudget() async throws {
        let folder = try TemporaryFolder()
        let small = (0..<40).map { "{id: s\($0), input: \"\(String(repeating: "a", count: 100))\"}" }.joined(separator: ", ")
        let (config, _) = try JobsTest.load(
            JobsTest.spec(job: "inline-fit", inputs: "  - inline: [\(small)]", samplesPerShard: 1000, extra: "kafka:\n  maxMessageBytes: 5000"), in: folder)
        let plan = try await JobSubmitter(logger: JobsTest.logger).plan(config)
        #expect(plan.shards.count > 1, "40 samples of ~130 bytes do not fit one 5 000-byte record")
        #expect(plan.samples == 40)
        for shard in plan.shards {
            #expect(RecordCodec.shared.encode(shard).count < 5000)
        }

        let big = "{id: big, input: \"\(String(repeating: "b", count: 6000))\"}"
        let (tooBig, _) = try JobsTest.load(
            JobsTest.spec(job: "inline-big", inputs: "  - inline: [\(big)]", samplesPerShard: 10, extra: "kafka:\n  maxMessageBytes: 5000"), in: folder)
        let error = await #expect(throws: FlotillaError.self) {
            _ = try await JobSubmitter(logger: JobsTest.logger).plan(tooBig)
        }
        #expect(error?.exitCode == 2)
        #expect(error?.message.contains("'big'") == true)
    }
}
