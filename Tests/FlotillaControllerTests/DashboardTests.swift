@testable import FlotillaController
import FlotillaCore
import FlotillaHTTP
import FlotillaTestSupport
import Foundation
import Testing

/// The dashboard at `/`, opened in headless Chromium during a running job.
@Suite("Dashboard in a browser", .timeLimit(.minutes(3)), .serialized)
struct DashboardTests {
    static let faults = FaultConfig(maxAttempts: 2, heartbeat: .milliseconds(250), workerTimeout: .seconds(2),
                                    shardTimeout: .seconds(60), speculative: false)

    @Test("The page follows /events during a job and shows the figures of /status",
          .enabled(if: Tools.has("chromedriver") && Tools.has("chromium"), "chromium and chromium-driver missing (tools/setup installs them)"))
    func liveDashboard() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 24, faults: Self.faults)
        var options = ControllerOptions(job: harness.job, brokers: fixture.bootstrapServers,
                                        tickInterval: .milliseconds(100), manifestTimeout: .seconds(20), httpPort: 0)
        options.workers = 3
        let service = ControllerService(options: options, backend: ExternalPodBackend(), logger: fixture.logger)
        async let outcome = service.runJob()
        let deadline = ContinuousClock.now + .seconds(20)
        while service.httpAddress == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        let url = try #require(service.httpAddress)

        // Three workers with their own rates; w4 beats for a moment, then is lost (its shard re-enqueued).
        let rates = ["w1": 410.0, "w2": 380.0, "w3": 295.0]
        let beats = Task {
            var tick = 0
            while !Task.isCancelled {
                tick += 1
                for (index, worker) in ["w1", "w2", "w3", "w4"].enumerated() where worker != "w4" || tick < 8 {
                    var record = Fixtures.heartbeat(worker, at: Timestamp.now(), running: worker == "w4" ? [(23, 0, 1)] : [(20 + index, 0, 1)],
                                                    queued: [], partitions: [index % 4], startedAt: Timestamp.now() - 500)
                    record.job = harness.job
                    record.samplesPerSecond = (rates[worker] ?? 200) * (1 + 0.2 * sin(Double(tick) / 3 + Double(index)))
                    record.predictors = [PredictorStatus(stage: "model", processes: 2, busy: 1, restarts: index)]
                    try? await harness.publish(record, topic: harness.topics.heartbeats, key: worker)
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        defer { beats.cancel() }

        // Another job on the same cluster, for the picker.
        let other = JobManifest(config: JobConfig(job: "other-job", inputs: [.inline([])], stages: [StageConfig(name: "s", predictor: .builtin("identity"))],
                                                  baseDirectory: "/tmp"), shards: 7, samples: 70, status: .running)
        try await harness.publish(other, topic: harness.topics.jobs, key: "other-job")

        let browser = try await WebDriver()
        do {
            try await browser.open("\(url)/")
            for index in 0..<16 {
                try await harness.ack(index, worker: ["w1", "w2", "w3"][index % 3])
                try await Task.sleep(for: .milliseconds(400))
            }
            // The job now stands still (acks stop): wait for two more live updates, then compare.
            let seen = try await updates(browser)
            var now = seen
            let waitUntil = ContinuousClock.now + .seconds(15)
            while now < seen + 3, ContinuousClock.now < waitUntil {
                try await Task.sleep(for: .milliseconds(300))
                now = try await updates(browser)
            }
            #expect(now >= seen + 3, "the page got no live updates (\(seen) → \(now))")
            let shown = try #require(try await browser.run("""
                const t = id => document.getElementById(id).textContent;
                return { samplesDone: t("samplesDone"), totalSamples: t("totalSamples"), workers: t("workers"), state: t("state"),
                         done: document.querySelectorAll("#shards .tile")[4].querySelector("b").textContent,
                         tiles: document.querySelectorAll("#workerTiles .tile").length,
                         lost: document.querySelectorAll("#workerTiles .tile.lost").length,
                         scaling: t("scaling"), pools: [...document.querySelectorAll("#workerTiles .pool")].map(p => p.textContent) };
                """) as? [String: Any])
            let status = try JSONDecoder().decode(ControllerStatus.self, from: Data(try await HTTPTestClient.get("\(url)/status").body.utf8))
            #expect(shown["samplesDone"] as? String == "\(status.samplesDone)")
            #expect(shown["totalSamples"] as? String == status.totalSamples.map(String.init))
            #expect(shown["done"] as? String == "\(status.shards["done"] ?? -1)")
            #expect(shown["workers"] as? String == "\(status.workers.filter { !$0.lost }.count)/\(status.desiredWorkers)")
            #expect(shown["state"] as? String == status.state)
            #expect(shown["tiles"] as? Int == status.workers.count)
            #expect(shown["scaling"] as? String == "fixed size · \(status.desiredWorkers) wanted")
            let pools = shown["pools"] as? [String] ?? []
            #expect(pools.contains("model: 2 processes, 1 busy, 2 restarts"), "\(pools)")
            #expect(status.samplesDone == 32 && status.shards["done"] == 16)
            // The picker lists both jobs; picking the other shows what its manifest says.
            let options = try await browser.run("return [...document.querySelectorAll('#jobs option')].map(o => o.value)") as? [String] ?? []
            #expect(options == [harness.job, "other-job"], "\(options)")
            _ = try await browser.run("const s = document.getElementById('jobs'); s.value = 'other-job'; s.dispatchEvent(new Event('change')); return 1")
            let seenBefore = try await updates(browser)
            let pickDeadline = ContinuousClock.now + .seconds(10)
            while try await updates(browser) < seenBefore + 2, ContinuousClock.now < pickDeadline { try await Task.sleep(for: .milliseconds(200)) }
            let panel = try await browser.run("const p = document.getElementById('other'); return p.hidden ? '' : p.textContent") as? String ?? ""
            #expect(panel.hasPrefix("other-job: running · 7 shards, 70 samples"), "\(panel)")
            _ = try await browser.run("const s = document.getElementById('jobs'); s.value = '\(harness.job)'; s.dispatchEvent(new Event('change')); return 1")
            let png = try await browser.screenshot()
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-dashboard.png").path
            try png.write(to: URL(fileURLWithPath: path))
            print("dashboard screenshot: \(path) (\(png.count) bytes); page showed \(shown)")
        } catch {
            await browser.quit()
            throw error
        }
        await browser.quit()
        for index in 16..<24 { try await harness.ack(index, worker: "w1") }
        let result = try #require(try await outcome)
        #expect(result.summary.done == 24)
    }

    private func updates(_ browser: WebDriver) async throws -> Int {
        Int(try await browser.run("return document.getElementById('updates').dataset.count") as? String ?? "0") ?? 0
    }
}
