import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// The autoscaler through the real executables: `flotilla controller` with no `--workers`.
@Suite("Autoscaling", .serialized, .timeLimit(.minutes(4)))
struct AutoscaleTests {
    @Test("with a backlog the fleet grows from workers.min to workers.max on measured speed; every sample once; the decision is in /status")
    func growsWithTheBacklog() async throws {
        // 200 samples/s per worker: 3 000 samples are 15 s for one worker, well over two start-ups.
        let stage = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '0.05']"
        let harness = try await FleetHarness(samples: 3_000, samplesPerShard: 20, stage: stage, maxWorkers: 3)
        try harness.submit()
        try harness.startController(workers: nil, extra: ["--http-port", "0"])
        var decision: [String: Any]?
        let deadline = ContinuousClock.now + .seconds(60)
        while decision == nil, ContinuousClock.now < deadline {
            if let status = harness.controllerStatus(), let decisions = status["scaleDecisions"] as? [[String: Any]], !decisions.isEmpty {
                #expect(status["autoscaling"] as? Bool == true)
                decision = decisions.first
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        let first = try #require(decision, "no autoscaler decision within 60 s: \(harness.controllerErrors(start: 1).suffix(2_000))")
        #expect(first["from"] as? Int == 1 && first["to"] as? Int == 3, "\(first)")
        #expect((first["ratePerWorker"] as? Double ?? 0) > 50 && (first["startupSeconds"] as? Double ?? 0) > 0, "\(first)")
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 0)
        let workers = Set(try await harness.acks().filter { $0.status == .done }.map(\.worker))
        #expect(workers == ["w1", "w2", "w3"], "every worker the autoscaler started did work")
        let (lines, status) = try harness.results()
        #expect(status == 0)
        let ids = lines.compactMap { $0["id"] as? String }
        #expect(ids.count == harness.samples.count && Set(ids) == Set(harness.samples))
    }

    @Test("scale-in drains: busy workers finish and commit what they hold; nothing is re-enqueued or run twice by the scale-in")
    func scaleInNeverInterrupts() async throws {
        // 0.4 s per shard on each of 3 workers: every worker is busy when the fleet is cut to 1.
        let stage = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '0.2']"
        let harness = try await FleetHarness(samples: 1_200, samplesPerShard: 20, stage: stage, faults: ", speculative: false",
                                             maxWorkers: 3)
        try harness.submit()
        try harness.startController(workers: 3, extra: ["--http-port", "0"])
        let deadline = ContinuousClock.now + .seconds(60)
        var busy = 0
        while busy < 3, ContinuousClock.now < deadline {
            let workers = harness.controllerStatus()?["workers"] as? [[String: Any]] ?? []
            busy = workers.filter { !(($0["inFlight"] as? [String]) ?? []).isEmpty }.count
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(busy == 3, "three busy workers before the scale-in")
        let scaled = try CommandRunner.run([CommandRunner.flotillaExecutable, "scale", harness.job, "1", "--brokers", harness.brokers])
        #expect(scaled.status == 0, "\(scaled.stderr)")
        #expect(try await harness.waitForController(timeout: .seconds(180)) == 0)
        let summary = try #require(harness.summary())
        let reasons = try await harness.reEnqueueReasons()
        #expect(summary["reEnqueued"] as? Int == 0, "\(reasons)")
        #expect(summary["duplicates"] as? Int == 0)
        let acks = try await harness.acks()
        #expect(acks.filter { $0.status == .done }.count == 60, "each shard committed once")
        #expect(Set(acks.map(\.worker)) == ["w1", "w2", "w3"], "the drained workers' shards were committed, not dropped")
        let logs = try String(contentsOfFile: "\(harness.folder)/logs/w3.log", encoding: .utf8)
        #expect(logs.contains("finished (drained)"), "w3 drained: \(logs.suffix(500))")
        let (lines, status) = try harness.results()
        #expect(status == 0 && lines.count == 1_200 && Set(lines.compactMap { $0["id"] as? String }) == Set(harness.samples))
    }
}
