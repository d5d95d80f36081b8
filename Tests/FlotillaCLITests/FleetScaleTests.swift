import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// The short variant of `tools/bench/scale`: a fleet of ten workers on tiny shards, no faults.
/// Before the ledger counted committed shards and consumer positions, this fell into a
/// re-enqueue storm (23 620 re-enqueues for 2 000 shards at 5 workers).
@Suite("Fleet at scale", .serialized, .timeLimit(.minutes(10)))
struct FleetScaleTests {
    @Test("10 workers × 2 000 shards of 10 samples (identity): the job finishes, ≤ 1 % re-enqueued but for stealing, ≤ 2 % run twice, exactly once, results on their shard's partition modulo kafka.resultPartitions")
    func tenWorkersTinyShards() async throws {
        let harness = try await FleetHarness(samples: 20_000, samplesPerShard: 10, stage: "builtin: identity", maxWorkers: 10,
                                             top: "kafka: { resultPartitions: 3 }")
        try harness.submit()
        try harness.startController(workers: 10)
        #expect(try await harness.waitForController(timeout: .seconds(400)) == 0)
        let stdout = harness.controllerOutput.split(separator: "\n")
        #expect(stdout.count == 1, "with --json, stdout is the JSON summary alone: \(stdout)")
        let summary = try #require(harness.summary())
        let reEnqueued = try #require(summary["reEnqueued"] as? Int)
        let duplicates = try #require(summary["duplicates"] as? Int)
        let reasons = try await harness.reEnqueueReasons()
        let balancing = (reasons["stolen"] ?? 0) + (reasons["speculative"] ?? 0)
        print("fleet scale (10 workers, 2 000 shards): re-enqueued \(reEnqueued) \(reasons), run twice \(duplicates)")
        #expect(summary["done"] as? Int == 2_000)
        // No storm and no false loss: re-enqueues for any reason but balancing stay within 1 %.
        #expect(reEnqueued - balancing <= 20, "re-enqueued \(reEnqueued) of 2 000 shards: \(reasons)")
        // Stealing is balancing, and bounded. The release fleet steals nothing here (tools/bench/scale);
        // ten debug-build workers on 2 cores run unevenly and steal 1-14 % (measured), running 0.2-1 % twice.
        #expect(balancing <= 300, "re-enqueued \(reEnqueued) of 2 000 shards: \(reasons)")
        #expect(duplicates <= 40, "\(duplicates) shards ran twice; re-enqueues \(reasons)")
        let misplaced = try await harness.resultsOffTheirShardPartition(resultPartitions: 3)
        #expect(misplaced.isEmpty, "results on another partition than their shard's: \(misplaced.prefix(5))")
        let (lines, status) = try harness.results()
        #expect(status == 0)
        #expect(lines.count == 20_000)
        #expect(Set(lines.compactMap { $0["id"] as? String }) == Set(harness.samples))
    }

    @Test("flotilla run --json (embedded broker): stdout is one JSON summary whose seconds and wallSeconds measure the job, with the controller's cost")
    func runJSON() throws {
        let jobFolder = try JobFolder("runjson")
        let folder = jobFolder.path
        try jobFolder.jsonLines("data.jsonl", count: 200, idPrefix: "r")
        let job = JobFolder.jobID("runjson")
        try jobFolder.write("job.yaml", """
            job: \(job)
            inputs: [{file: data.jsonl}]
            shard: { samples: 10 }
            stages: [{name: echo, builtin: identity}]
            workers: { min: 2, max: 2 }
            """)
        let started = ContinuousClock.now
        let run = try CommandRunner.run([CommandRunner.flotillaExecutable, "run", "\(folder)/job.yaml", "--json", "--log-dir", "\(folder)/logs"],
                                        directory: folder)
        let wall = ContinuousClock.now - started
        #expect(run.status == 0, "stderr: \(run.stderr)")
        let stdout = run.stdout.split(separator: "\n")
        #expect(stdout.count == 1, "stdout: \(run.stdout)")
        let summary = try JSONDecoder().decode(JobStatusSummary.self, from: Data((stdout.last ?? "").utf8))
        #expect(summary.done == 20 && summary.samples == 200)
        let wallSeconds = try #require(summary.wallSeconds)
        #expect(summary.seconds > 0 && summary.seconds <= wallSeconds)
        #expect(wallSeconds <= Double(wall.components.seconds) + 1, "the summary's wall time fits inside the command's")
        let cost = try #require(summary.controller, "the summary says what the job cost the controller")
        #expect(cost.ticks > 0 && cost.heartbeats > 0 && cost.cpuSeconds > 0)
        #expect(cost.maxTickMs >= cost.meanTickMs && cost.maxHeartbeatLagMs >= cost.meanHeartbeatLagMs)
        #expect(run.stderr.contains("finished:"), "the human summary is on stderr")
    }
}
