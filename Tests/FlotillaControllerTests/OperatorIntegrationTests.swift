import EmbeddedBroker
@testable import FlotillaController
import FlotillaCore
import FlotillaHTTP
import FlotillaTestSupport
import Foundation
import Testing

/// The controller's HTTP surface during a real job on a real broker: actions publish control
/// records the controller acts on, and a real Prometheus server scrapes `/metrics`.
@Suite("Operator surface against a real broker", .timeLimit(.minutes(3)), .serialized)
struct OperatorIntegrationTests {
    static let faults = ControllerIntegrationTests.faults
    static let token = "integration-token-0123456789"

    func controller(_ harness: JobHarness) throws -> ControllerService {
        var options = ControllerOptions(job: harness.job, brokers: harness.fixture.bootstrapServers,
                                        tickInterval: .milliseconds(100), manifestTimeout: .seconds(20))
        options.http = OperatorSettings(token: try ActionToken(Self.token))
        return ControllerService(options: options, backend: ExternalPodBackend(), logger: harness.fixture.logger)
    }

    func address(of service: ControllerService) async throws -> String {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let address = service.httpAddress { return address }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw FlotillaError(.internal, "the controller's HTTP server did not start")
    }

    /// POST with the token, again while the controller answers 503 (not connected to Kafka yet).
    func act(_ url: String) async throws -> HTTPTestClient.Reply {
        let deadline = ContinuousClock.now + .seconds(20)
        while true {
            let reply = try await HTTPTestClient.post(url, token: Self.token)
            guard reply.status == 503, ContinuousClock.now < deadline else { return reply }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func status(_ url: String) async throws -> ControllerStatus {
        try JSONDecoder().decode(ControllerStatus.self, from: Data(try await HTTPTestClient.get("\(url)/status").body.utf8))
    }

    @Test("POST /actions/scale publishes the scale record the controller applies; autoscale hands the size back; close and drain check their target; /actions/cancel cancels the job")
    func actions() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 3, faults: Self.faults)
        let service = try controller(harness)
        let watcher = try await harness.reader([harness.topics.control])
        async let outcome = service.runJob()
        let url = try await address(of: service)

        #expect(try await HTTPTestClient.post("\(url)/actions/scale?workers=2").status == 401)
        let scaled = try await act("\(url)/actions/scale?workers=2")
        #expect(scaled.status == 202, "\(scaled.body)")
        let record = try await watcher.first(ControlRecord.self, topic: harness.topics.control, timeout: .seconds(10)) { record, _ in
            record.command == .scale
        }
        #expect(record?.0.target == ControlRecord.controller && record?.0.workers == 2)
        let deadline = ContinuousClock.now + .seconds(10)
        while try await status(url).desiredWorkers != 2, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try await status(url).desiredWorkers == 2)
        let autoscale = try await act("\(url)/actions/autoscale")
        #expect(autoscale.status == 202, "\(autoscale.body)")
        let handback = try await watcher.first(ControlRecord.self, topic: harness.topics.control, timeout: .seconds(10)) { record, _ in
            record.command == .scale && record.workers == nil
        }
        #expect(handback != nil, "autoscale is a scale command without a size")
        #expect(try await act("\(url)/actions/close").status == 409, "the job is not open")
        #expect(try await act("\(url)/actions/drain?worker=w9").status == 400, "no such live worker")
        #expect(try await HTTPTestClient.post("\(url)/actions/drain?worker=w1").status == 401)

        let cancelled = try await act("\(url)/actions/cancel?reason=from%20the%20test")
        #expect(cancelled.status == 202, "\(cancelled.body)")
        let result = try #require(try await outcome)
        guard case .cancelled = result else {
            Issue.record("expected a cancelled job, got \(result)")
            return
        }
        let metrics = service.registry.emitToString()
        #expect(metrics.contains(#"flotilla_controller_http_actions_total{job="\#(harness.job)",action="scale",result="published"} 1"#))
    }

    @Test("An action the broker does not take within the request timeout is answered 504, and the server goes on")
    func actionTimeout() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 1, faults: Self.faults)
        var options = ControllerOptions(job: harness.job, brokers: fixture.bootstrapServers,
                                        tickInterval: .milliseconds(100), manifestTimeout: .seconds(20))
        var settings = OperatorSettings(token: try ActionToken(Self.token))
        settings.requestTimeout = .seconds(1)
        options.http = settings
        let service = ControllerService(options: options, backend: ExternalPodBackend(), logger: fixture.logger)
        let run = Task { try await service.runJob() }
        // Cancelled, not awaited: with its broker gone the controller waits for deliveries that
        // librdkafka keeps retrying, and ends when they time out.
        defer { run.cancel() }
        let url = try await address(of: service)
        #expect(try await act("\(url)/actions/scale?workers=1").status == 202)
        fixture.broker.stop()
        let started = ContinuousClock.now
        let reply = try await HTTPTestClient.post("\(url)/actions/scale?workers=2", token: Self.token)
        #expect(reply.status == 504, "\(reply.body)")
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(try await HTTPTestClient.get("\(url)/healthz").status == 200)
    }

    @Test("A real Prometheus server scrapes /metrics on loopback; its query API returns the job's done samples",
          .enabled(if: Tools.has("prometheus"), "prometheus missing: apt-get install prometheus (tools/setup does)"))
    func prometheusScrapes() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 4, faults: Self.faults)
        let service = try controller(harness)
        async let outcome = service.runJob()
        let url = try await address(of: service)
        let beats = Task {
            while !Task.isCancelled {
                try? await harness.heartbeat("w1", partitions: [0, 1, 2, 3])
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        defer { beats.cancel() }
        for index in 0..<3 { try await harness.ack(index, worker: "w1") }
        let deadline = ContinuousClock.now + .seconds(15)
        while try await status(url).samplesDone < 6, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        let done = try await status(url).samplesDone
        #expect(done == 6)

        let prometheus = try PrometheusServer(target: String(url.dropFirst("http://".count)))
        defer { prometheus.stop() }
        var value: String?
        var labels: [String: String] = [:]
        let scrapeDeadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < scrapeDeadline {
            if let reply = try? await HTTPTestClient.get("\(prometheus.url)/api/v1/query?query=flotilla_controller_samples_total"),
               let json = try? JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [String: Any],
               let data = json["data"] as? [String: Any], let result = (data["result"] as? [[String: Any]])?.first {
                labels = result["metric"] as? [String: String] ?? [:]
                value = (result["value"] as? [Any])?.last as? String
                if value == "\(done)" { break }
            }
            try await Task.sleep(for: .milliseconds(500))
        }
        #expect(value == "\(done)", "Prometheus answered \(String(describing: value)); its log: \(prometheus.log)")
        #expect(labels["job"] == harness.job)
        let up = try await HTTPTestClient.get("\(prometheus.url)/api/v1/query?query=up")
        #expect(up.body.contains(#""value":["#) && up.body.contains(#","1"]"#), "up: \(up.body)")

        try await harness.ack(3, worker: "w1")
        let result = try #require(try await outcome)
        #expect(result.summary.done == 4)
    }

    @Test("flotilla worker --http-address serves its predictor metrics (batches, batch latency per stage) and /healthz")
    func workerMetrics() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 4, faults: Self.faults, builtin: "identity")
        let port = try FreePort.find()
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: CommandRunner.flotillaExecutable)
        worker.arguments = ["worker", harness.job, "--brokers", fixture.bootstrapServers, "--worker-id", "w1",
                            "--http-address", "127.0.0.1:\(port)"]
        worker.standardOutput = FileHandle.nullDevice
        worker.standardError = FileHandle.nullDevice
        try worker.run()
        defer {
            if worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
        }
        var metrics = ""
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            metrics = (try? await HTTPTestClient.get("http://127.0.0.1:\(port)/metrics"))?.body ?? ""
            if metrics.contains(#"flotilla_predictor_batch_seconds_count{stage="echo"} 4"#) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(metrics.contains(#"flotilla_predictor_batches_total{stage="echo"} 4"#), "\(metrics)")
        #expect(metrics.contains(#"flotilla_predictor_batch_seconds_count{stage="echo"} 4"#))
        #expect(metrics.contains("# TYPE flotilla_predictor_batch_seconds histogram"))
        #expect(try await HTTPTestClient.get("http://127.0.0.1:\(port)/healthz").status == 200)
        if Tools.has("promtool") {
            let check = try CommandRunner.run(["promtool", "check", "metrics"], input: metrics)
            #expect(check.status == 0, "promtool: \(check.stdout)\(check.stderr)")
        }
        worker.terminate()  // drains: finishes, commits, exits 0
        let exitBy = ContinuousClock.now + .seconds(20)
        while worker.isRunning, ContinuousClock.now < exitBy { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!worker.isRunning && worker.terminationStatus == 0)
    }

    @Test("flotilla status --watch shows the controller's rate and ETA, the figures of /status")
    func statusWatch() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 4, faults: Self.faults)
        let service = try controller(harness)
        async let outcome = service.runJob()
        let url = try await address(of: service)
        let beats = Task {
            while !Task.isCancelled {
                var record = Fixtures.heartbeat("w1", at: Timestamp.now(), running: [(1, 0, 1)], partitions: [0, 1, 2, 3])
                record.job = harness.job
                record.samplesPerSecond = 50
                try? await harness.publish(record, topic: harness.topics.heartbeats, key: "w1")
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        defer { beats.cancel() }
        try await harness.ack(0, worker: "w1")
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            let now = try await status(url)
            if now.samplesDone == 2, now.samplesPerSecond == 50 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        let expected = try await status(url)
        #expect(expected.samplesDone == 2 && expected.samplesPerSecond == 50 && expected.etaSeconds != nil)

        let output = FileManager.default.temporaryDirectory.appendingPathComponent("status-watch-\(harness.job).jsonl").path
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        defer { try? FileManager.default.removeItem(atPath: output) }
        let watch = Process()
        watch.executableURL = URL(fileURLWithPath: CommandRunner.flotillaExecutable)
        watch.arguments = ["status", harness.job, "--brokers", fixture.bootstrapServers, "--watch", "--json"]
        watch.standardOutput = FileHandle(forWritingAtPath: output)
        watch.standardError = FileHandle.nullDevice
        let started = ContinuousClock.now
        try watch.run()
        defer { if watch.isRunning { kill(watch.processIdentifier, SIGKILL) } }
        var live: [String: Any]?
        let seen = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < seen {
            try await Task.sleep(for: .milliseconds(200))
            let lines = ((try? String(contentsOfFile: output, encoding: .utf8)) ?? "").split(separator: "\n")
            // The latest controller heartbeat at each refresh; the rate settles once the ack has
            // left the controller's rate window, and then these are /status's figures.
            live = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .compactMap { $0["live"] as? [String: Any] }.last { $0["samplesDone"] as? Int == expected.samplesDone }
            if live?["samplesPerSecond"] as? Double == expected.samplesPerSecond { break }
        }
        let shown = try #require(live, "status --watch printed no live figures")
        #expect(ContinuousClock.now - started < .seconds(15), "each refresh reaches the pipe at once")
        print("status --watch showed the controller's figures \(ContinuousClock.now - started) after it started")
        #expect(shown["samplesDone"] as? Int == expected.samplesDone)
        #expect(shown["samplesPerSecond"] as? Double == expected.samplesPerSecond)
        let eta = try #require(shown["etaSeconds"] as? Double)
        #expect(abs(eta - (expected.etaSeconds ?? -1)) < 0.001)

        for index in 1..<4 { try await harness.ack(index, worker: "w1") }
        #expect(try #require(try await outcome).summary.done == 4)
        let exitBy = ContinuousClock.now + .seconds(20)
        while watch.isRunning, ContinuousClock.now < exitBy { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!watch.isRunning && watch.terminationStatus == 0, "status --watch ends with the job")
        print("status --watch ended \(ContinuousClock.now - started) after it started")
    }
}

/// A Prometheus server on a free loopback port scraping one target every second.
/// `Process` is not Sendable; its one mutable use (`terminate`, `waitUntilExit`) is `stop()`, called once.
final class PrometheusServer: @unchecked Sendable {
    let url: String
    let folder: String
    private let process: Process

    init(target: String) throws {
        let port = try FreePort.find()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("prometheus-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // honor_labels: the controller's own `job` label (the job id) wins over the scrape job's name.
        try """
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
            scrape_configs:
              - job_name: flotilla
                honor_labels: true
                static_configs:
                  - targets: ['\(target)']
            """.write(toFile: "\(folder)/prometheus.yml", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["prometheus", "--config.file=\(folder)/prometheus.yml", "--storage.tsdb.path=\(folder)/data",
                             "--web.listen-address=127.0.0.1:\(port)"]
        _ = FileManager.default.createFile(atPath: "\(folder)/log", contents: nil)
        let log = FileHandle(forWritingAtPath: "\(folder)/log")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        self.process = process
        url = "http://127.0.0.1:\(port)"
    }

    var log: String { (try? String(contentsOfFile: "\(folder)/log", encoding: .utf8)).map { String($0.suffix(2_000)) } ?? "" }

    func stop() {
        process.terminate()
        // Not waitUntilExit: it was seen to hang when called from an async test (chromedriver).
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: folder)
    }
}
