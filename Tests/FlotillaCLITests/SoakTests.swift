import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// The soak of docs/RELIABILITY.md: random faults of five kinds during one job, then every sample
/// exactly once through `flotilla results` and a raw read_committed read with the reader rule.
/// `tools/fault-suite --soak DURATION` runs it long (FLOTILLA_SOAK_SECONDS, FLOTILLA_SOAK_SAMPLES);
/// CI runs a short variant.
@Suite("Soak", .serialized, .timeLimit(.minutes(60)))
struct SoakTests {
    static let environment = ProcessInfo.processInfo.environment
    static let seconds = Int(environment["FLOTILLA_SOAK_SECONDS"] ?? "") ?? 40
    static let samples = Int(environment["FLOTILLA_SOAK_SAMPLES"] ?? "") ?? 10_000
    static let workers = 3

    enum Fault: String, CaseIterable {
        case workerKill = "worker kill -9"
        case workerPause = "worker SIGSTOP/SIGCONT"
        case predictorKill = "predictor kill -9"
        case brokerPause = "broker pause"
        case controllerKill = "controller kill -9 + restart"
    }

    @Test("Random faults of five kinds during one job: every sample exactly once, nothing dead-lettered")
    func soak() async throws {
        // The predictor is paced so the job lasts about the soak: faults land on a running job.
        let batch = 10  // the harness's stage batch
        let pace = Double(Self.workers * batch * Self.seconds) / Double(Self.samples) * 0.8
        let stage = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '\(String(format: "%.4f", pace))']"
        let harness = try await FleetHarness(samples: Self.samples, samplesPerShard: 100, stage: stage, maxWorkers: Self.workers,
                                             maxAttempts: 10)
        try harness.submit()
        try harness.startController(workers: Self.workers)
        var generator = SystemRandomNumberGenerator()
        var injected: [(fault: Fault, recovery: Double)] = []
        var deck: [Fault] = []
        let started = ContinuousClock.now
        let interval = max(2.0, Double(Self.seconds) / 80)  // ≥ 50 faults over a 10-minute soak (recoveries take time too)
        while ContinuousClock.now - started < .seconds(Self.seconds), harness.controller?.isRunning == true {
            try await Task.sleep(for: .seconds(interval * Double.random(in: 0.5...1.5, using: &generator)))
            guard harness.controller?.isRunning == true else { break }
            // Random order, every kind once per round: a short soak still covers all five kinds.
            if deck.isEmpty { deck = Fault.allCases.shuffled(using: &generator) }
            let fault = deck.removeLast()
            guard let recovery = try await inject(fault, harness, &generator) else {
                deck.insert(fault, at: 0)  // not injectable now (e.g. no predictor up): later this round
                continue
            }
            injected.append((fault, recovery))
            print("soak: \(String(format: "%6.1f", (ContinuousClock.now - started).seconds)) s  \(fault.rawValue): recovered in \(String(format: "%.2f", recovery)) s")
        }
        #expect(try await harness.waitForController(timeout: .seconds(600)) == 0, "\(harness.controllerErrors(start: harness.starts).suffix(2_000))")

        // A read_committed read of a large results topic: the embedded broker can take more than
        // the default 10 s to answer one fetch of it.
        let (lines, status) = try harness.results(timeout: 120)
        let ids = lines.compactMap { $0["id"] as? String }
        let raw = try await harness.rawReaderResults()
        let dead = try await harness.deadLetters()
        let reasons = try await harness.reEnqueueReasons()
        let expected = Set(harness.samples)
        let report = SoakReport(seconds: (ContinuousClock.now - started).seconds, samplesIn: expected.count, resultsOut: ids.count,
                                duplicates: ids.count - Set(ids).count, lost: expected.subtracting(ids).count,
                                rawOut: raw.count, rawLost: expected.subtracting(raw.map(\.id)).count, deadLetters: dead.count,
                                faults: injected.map { SoakReport.Injected(kind: $0.fault.rawValue, recoverySeconds: $0.recovery) },
                                reEnqueues: reasons)
        print(report.text)
        if let path = Self.environment["FLOTILLA_SOAK_REPORT"] { try report.text.write(toFile: path, atomically: true, encoding: .utf8) }
        #expect(status == 0)
        #expect(report.resultsOut == expected.count && report.duplicates == 0 && report.lost == 0)
        #expect(report.rawOut == expected.count && report.rawLost == 0)
        #expect(report.deadLetters == 0)
        #expect(Set(injected.map(\.fault)).count >= min(5, injected.count / 2), "faults of several kinds: \(injected.map(\.fault.rawValue))")
    }

    /// Injects one fault; returns the seconds until the fleet is whole again and progressing, or
    /// nil when there was nothing to hit.
    private func inject(_ fault: Fault, _ harness: FleetHarness, _ generator: inout SystemRandomNumberGenerator) async throws -> Double? {
        let workers = try harness.workerPIDs()
        let before = try await progress(harness)
        var resumedAt = ContinuousClock.now
        switch fault {
        case .workerKill:
            guard let victim = workers.randomElement(using: &generator) else { return nil }
            kill(victim, SIGKILL)
            resumedAt = ContinuousClock.now
        case .workerPause:
            guard let victim = workers.randomElement(using: &generator) else { return nil }
            kill(victim, SIGSTOP)
            try await Task.sleep(for: .seconds(Double.random(in: 1...5, using: &generator)))  // past workerTimeout (3 s) or not
            kill(victim, SIGCONT)
            resumedAt = ContinuousClock.now
        case .predictorKill:
            guard let worker = workers.randomElement(using: &generator),
                  let child = try CommandRunner.run(["pgrep", "-P", String(worker), "python3"]).stdout
                      .split(separator: "\n").compactMap({ Int32($0) }).first else { return nil }
            kill(child, SIGKILL)
            resumedAt = ContinuousClock.now
        case .brokerPause:
            kill(harness.fixture.broker.pid, SIGSTOP)
            try await Task.sleep(for: .seconds(Double.random(in: 2...8, using: &generator)))
            kill(harness.fixture.broker.pid, SIGCONT)
            resumedAt = ContinuousClock.now
        case .controllerKill:
            guard let controller = harness.controller, controller.isRunning else { return nil }
            kill(controller.processIdentifier, SIGKILL)
            controller.waitUntilExit()
            try harness.startController(workers: Self.workers)
            resumedAt = ContinuousClock.now
        }
        // Recovered: the fleet is whole (every worker alive and heard from) and done shards moved on.
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline, harness.controller?.isRunning == true {
            let now = try await progress(harness)
            if now.done > before.done, now.alive >= Self.workers { return (ContinuousClock.now - resumedAt).seconds }
            try await Task.sleep(for: .milliseconds(100))
        }
        return (ContinuousClock.now - resumedAt).seconds
    }

    /// Done shards and live workers, from the controller's /status.
    private func progress(_ harness: FleetHarness) async throws -> (done: Int, alive: Int) {
        guard let status = harness.controllerStatus() else { return (0, 0) }
        let done = (status["shards"] as? [String: Any])?["done"] as? Int ?? 0
        let alive = (status["workers"] as? [[String: Any]])?.filter { ($0["lost"] as? Bool) == false && ($0["state"] as? String) == "running" }.count ?? 0
        return (done, alive)
    }
}

/// What a soak found, as the table docs/RELIABILITY.md records.
struct SoakReport {
    struct Injected { var kind: String; var recoverySeconds: Double }
    var seconds: Double
    var samplesIn, resultsOut, duplicates, lost, rawOut, rawLost, deadLetters: Int
    var faults: [Injected]
    var reEnqueues: [String: Int]

    var text: String {
        var lines = [String(format: "soak: %.0f s, %d faults; samples in %d, results out %d (duplicates %d, lost %d); raw reader %d (lost %d); dead letters %d",
                            seconds, faults.count, samplesIn, resultsOut, duplicates, lost, rawOut, rawLost, deadLetters)]
        for (kind, group) in Dictionary(grouping: faults, by: \.kind).sorted(by: { $0.key < $1.key }) {
            let times = group.map(\.recoverySeconds).sorted()
            let pick = { (q: Double) in times[min(times.count - 1, Int(Double(times.count - 1) * q))] }
            let name = "  " + kind.padding(toLength: 30, withPad: " ", startingAt: 0)
            lines.append(name + String(format: "%4d   recovery p50 %.2f s  p90 %.2f s  max %.2f s", group.count, pick(0.5), pick(0.9), times.last ?? 0))
        }
        lines.append("  re-enqueued by reason: " + reEnqueues.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        return lines.joined(separator: "\n") + "\n"
    }
}
