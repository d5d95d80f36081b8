import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// An open job end to end: the fleet scales to zero between shards, a pipeline's shard (published
/// with kcat, as docs/PROTOCOL.md shows) brings a worker back, `flotilla close` ends the job.
@Suite("Open jobs through the CLI", .serialized, .timeLimit(.minutes(4)))
struct OpenJobCLITests {
    @Test("mode: open with workers.min 0: runs its shards, scales to zero, runs a pipeline's shard, ends on close; every sample once")
    func openJobScalesToZero() async throws {
        let harness = try await FleetHarness(samples: 40, samplesPerShard: 10, stage: "builtin: identity",
                                             workers: "min: 0, max: 2, idleTimeout: 2s", top: "mode: open")
        try harness.submit()
        try harness.startController(workers: nil, extra: ["--http-port", "0"])
        // Its own shards done, the fleet drains to zero and the job stays open.
        try await expectEventually(harness, "the fleet at zero after its shards") { status in
            (status["samplesDone"] as? Int) == 40 && (status["desiredWorkers"] as? Int) == 0
                && ((status["workers"] as? [[String: Any]]) ?? []).allSatisfy { ($0["lost"] as? Bool) == true || ($0["state"] as? String) == "stopping" }
        }
        #expect(harness.controller?.isRunning == true, "an open job does not end by itself")
        // A pipeline publishes one more shard.
        let record = #"{"v":1,"job":"\#(harness.job)","shard":"s100000","attempt":0,"reason":"initial","createdAt":1795000000000,"samples":2,"source":{"kind":"inline","samples":[{"id":"p1","input":{"text":"hello"}},{"id":"p2","input":{"text":"world"}}]}}"#
        let publishedAt = ContinuousClock.now
        let published = try CommandRunner.run(["sh", "-c", "printf '%s\\n' \"$0\" | kcat -P -b \(harness.brokers) -t flotilla.\(harness.job).shards -k s100000 -H flotilla-v=1 -H flotilla-type=shard -H flotilla-attempt=0", record])
        #expect(published.status == 0, "\(published.stderr)")
        try await expectEventually(harness, "a worker back for the new shard, and the shard done") { status in
            (status["samplesDone"] as? Int) == 42
        }
        let backIn = ContinuousClock.now - publishedAt
        print("open job: from the pipeline's shard to its results committed with the fleet at zero: \(backIn)")
        // The new worker is warm-started (~1.3 s); waiting for the group's join instead takes 4–12 s.
        #expect(backIn < .seconds(5), "a worker starts and commits the shard's results within 5 s (took \(backIn))")
        let decisions = (harness.controllerStatus()?["scaleDecisions"] as? [[String: Any]] ?? []).compactMap { $0["to"] as? Int }
        #expect(decisions.starts(with: [1]) && decisions.contains(0), "0 → 1 at the start, → 0 when idle, → 1 for the new shard: \(decisions)")
        let closed = try CommandRunner.run([CommandRunner.flotillaExecutable, "close", harness.job, "--brokers", harness.brokers])
        #expect(closed.status == 0, "\(closed.stderr)")
        #expect(try await harness.waitForController(timeout: .seconds(60)) == 0)
        let (lines, status) = try harness.results()
        #expect(status == 0)
        #expect(Set(lines.compactMap { $0["id"] as? String }) == Set(harness.samples + ["p1", "p2"]))
        #expect(lines.count == 42)
        // Closing again: the job is over.
        let again = try CommandRunner.run([CommandRunner.flotillaExecutable, "close", harness.job, "--brokers", harness.brokers])
        #expect(again.status == 2 && again.stderr.contains("already done"), "\(again.stderr)")
    }

    @Test("closing a job that is not open is refused with exit 2")
    func closeRefused() async throws {
        let harness = try await FleetHarness(samples: 10, samplesPerShard: 10, stage: "builtin: identity")
        try harness.submit()
        let closed = try CommandRunner.run([CommandRunner.flotillaExecutable, "close", harness.job, "--brokers", harness.brokers])
        #expect(closed.status == 2 && closed.stderr.contains("is not open"), "\(closed.stderr)")
    }

    func expectEventually(_ harness: FleetHarness, _ what: String, timeout: Duration = .seconds(60),
                          _ condition: ([String: Any]) -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = harness.controllerStatus(), condition(status) { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        Issue.record("not within \(timeout): \(what); status \(harness.controllerStatus() ?? [:])")
        throw HarnessError("timed out: \(what)")
    }
}
