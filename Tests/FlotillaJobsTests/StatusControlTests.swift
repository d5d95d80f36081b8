import FlotillaCore
import FlotillaJobs
import FlotillaKafka
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

@Suite("flotilla status, cancel and scale", .timeLimit(.minutes(3)))
struct StatusControlTests {
    @Test("Status counts done, failed and dead-lettered shards from the ledger; --json has the contract fields")
    func statusCounts() async throws {
        let job = try await SubmittedJob.make("status")
        let reader = JobStatusReader(connection: JobsTest.connection(job.fixture), job: job.job, logger: JobsTest.logger)
        let fresh = try await reader.read()
        #expect(fresh.state == .submitted)
        #expect(fresh.counts.shards == 3 && fresh.counts.done == 0 && fresh.pendingShards == 3)

        let producer = try job.fixture.producer()
        try await producer.send([job.ack(shard: 0, attempt: 0, run: "A", errors: 1), job.ack(shard: 0, attempt: 1, run: "B"),
                                 job.ack(shard: 1, attempt: 0, run: "C", status: .failed)])
        let retry = ShardRecord(job: job.job, shard: "s000001", attempt: 1, source: .inline([]), reason: .retry)
        try await producer.send(JobsTest.message(retry, topic: job.topics.shards, key: "s000001", partition: 1, attempt: 1))
        try await producer.send(job.deadLetter(shard: 2))

        let report = try await reader.read()
        #expect(report.state == .running)
        #expect(report.counts.done == 1 && report.counts.samples == 3 && report.counts.failedSamples == 1)
        #expect(report.failedShards == 1 && report.counts.dead == 1 && report.pendingShards == 1)
        #expect(report.counts.duplicates == 1 && report.counts.reEnqueued == 1)

        let run = try JobsTest.flotilla(["status", job.job, "--brokers", job.fixture.bootstrapServers, "--json"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let last = try #require(run.stdout.split(separator: "\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        for key in ["job", "shards", "done", "dead", "samples", "failedSamples", "seconds", "samplesPerSecond", "state", "failed"] {
            #expect(object[key] != nil, "--json has \(key)")
        }
        #expect(object["job"] as? String == job.job)
        #expect(object["state"] as? String == "running")
        #expect(object["done"] as? Int == 1 && object["dead"] as? Int == 1 && object["failed"] as? Int == 1)
    }

    @Test("status --watch returns once every shard is done or dead-lettered; exit 3 with dead-lettered shards")
    func watchEnds() async throws {
        let job = try await SubmittedJob.make("watch")
        let producer = try job.fixture.producer()
        try await producer.send([job.ack(shard: 0, attempt: 0, run: "a"), job.ack(shard: 1, attempt: 0, run: "b"), job.deadLetter(shard: 2)])
        let started = ContinuousClock.now
        let run = try JobsTest.flotilla(["status", job.job, "--brokers", job.fixture.bootstrapServers, "--watch"])
        #expect(run.status == 3, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("job \(job.job): done"))
        #expect(ContinuousClock.now - started < .seconds(15))
    }

    @Test("cancel publishes cancel for every worker and a cancelled manifest; a second cancel publishes nothing")
    func cancel() async throws {
        let job = try await SubmittedJob.make("cancel")
        try await job.fixture.producer().send(job.ack(shard: 0, attempt: 0, run: "A"))
        let run = try JobsTest.flotilla(["cancel", job.job, "--brokers", job.fixture.bootstrapServers])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdout.contains("cancelled"))

        let control = try await JobsTest.readAll(job.fixture, [job.topics.control])
        #expect(control.count == 1)
        let command = try RecordCodec.shared.decode(ControlRecord.self, from: try #require(control.first).value)
        #expect(command.command == .cancel && command.target == "*" && command.job == job.job)
        #expect(control.first?.keyString == "*")

        let manifests = try await JobsTest.readAll(job.fixture, [job.topics.jobs]).filter { $0.keyString == job.job }
        #expect(manifests.count == 2)
        let latest = try RecordCodec.shared.decode(JobManifest.self, from: try #require(manifests.last).value)
        #expect(latest.status == .cancelled)
        #expect(latest.summary?.done == 1 && latest.summary?.shards == 3)
        #expect(latest.createdAt <= latest.updatedAt)

        let status = try await JobStatusReader(connection: JobsTest.connection(job.fixture), job: job.job, logger: JobsTest.logger).read()
        #expect(status.state == .cancelled)

        let again = try JobsTest.flotilla(["cancel", job.job, "--brokers", job.fixture.bootstrapServers])
        #expect(again.status == 0)
        #expect(again.stdout.contains("already cancelled"))
        #expect(try await JobsTest.readAll(job.fixture, [job.topics.control]).count == 1)
    }

    @Test("scale publishes a scale command for the controller; out-of-range counts are warned about")
    func scale() async throws {
        let job = try await SubmittedJob.make("scale")
        let run = try JobsTest.flotilla(["scale", job.job, "9", "--brokers", job.fixture.bootstrapServers])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("allows 1...4 workers; the controller will run 4"))
        let control = try await JobsTest.readAll(job.fixture, [job.topics.control])
        #expect(control.count == 1)
        let record = try RecordCodec.shared.decode(ControlRecord.self, from: try #require(control.first).value)
        #expect(record.command == .scale && record.target == ControlRecord.controller && record.workers == 9)
        #expect(control.first?.keyString == "controller")

        let negative = try JobsTest.flotilla(["scale", job.job, "--brokers", job.fixture.bootstrapServers, "--", "-1"])
        #expect(negative.status == 2)
    }
}
