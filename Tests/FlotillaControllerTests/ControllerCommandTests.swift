import EmbeddedBroker
import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// The `flotilla controller` executable, run as a user would.
@Suite("flotilla controller command", .timeLimit(.minutes(2)))
struct ControllerCommandTests {
    static let faults = FaultConfig(maxAttempts: 1, heartbeat: .milliseconds(500), workerTimeout: .seconds(2),
                                    shardTimeout: .seconds(60), speculative: false)

    @Test("Finishes a job whose shards are all acked: the status address on stderr, stdout the JSON summary alone, exit 0")
    func completes() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 3, faults: Self.faults)
        for index in 0..<3 { try await harness.ack(index, worker: "w1") }
        let output = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", harness.job,
                                            "--brokers", fixture.bootstrapServers, "--backend", "external", "--json"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stderr.contains("status at http://127.0.0.1:"))
        #expect(output.stdout.split(separator: "\n").count == 1, "stdout: \(output.stdout)")
        let last = try #require(output.stdout.split(separator: "\n").last)
        let summary = try JSONDecoder().decode(JobStatusSummary.self, from: Data(last.utf8))
        #expect(summary.job == harness.job && summary.done == 3 && summary.dead == 0 && summary.samples == 6)
    }

    @Test("Exit 3 when a shard was dead-lettered")
    func deadLettered() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 2, faults: Self.faults)
        try await harness.ack(0, worker: "w1")
        try await harness.ack(1, worker: "w1", status: .failed, error: "bad input")
        let output = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", harness.job,
                                            "--brokers", fixture.bootstrapServers, "--backend", "external"])
        #expect(output.status == 3, "stderr: \(output.stderr)")
        #expect(output.stdout.contains("1 dead-lettered"))
    }

    @Test("Bad input exits 2 with a message naming the problem")
    func badInput() throws {
        let kubernetes = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1",
                                                "--brokers", "127.0.0.1:1", "--backend", "kubernetes"])
        #expect(kubernetes.status == 64 || kubernetes.status == 2)
        #expect(kubernetes.stderr.contains("--backend kubernetes needs --pod-template"))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-k8s-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let noTemplate = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1", "--brokers", "127.0.0.1:1",
                                                "--backend", "kubernetes", "--pod-template", "\(folder)/missing.yaml"])
        #expect(noTemplate.status == 2 && noTemplate.stderr.contains("cannot read the pod template"), "\(noTemplate.stderr)")
        try "spec: {containers: [{name: worker, image: flotilla}]}\n".write(toFile: "\(folder)/pod.yaml", atomically: true, encoding: .utf8)
        let noConfig = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1", "--brokers", "127.0.0.1:1",
                                              "--backend", "kubernetes", "--pod-template", "\(folder)/pod.yaml", "--kubeconfig", "\(folder)/nope"])
        #expect(noConfig.status == 2 && noConfig.stderr.contains("cannot read the kubeconfig"), "\(noConfig.stderr)")
        let local = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1", "--brokers", "127.0.0.1:1",
                                           "--namespace", "ml"])
        #expect(local.stderr.contains("are for --backend kubernetes"))
        let backend = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1",
                                             "--brokers", "127.0.0.1:1", "--backend", "mesos"])
        #expect(backend.status == 64 || backend.status == 2)
        #expect(backend.stderr.contains("--backend must be local, external or kubernetes"))
    }

    @Test("FLOTILLA_HTTP_ADDRESS sets the address (':PORT' is loopback) and local workers do not inherit it; bad addresses and short tokens exit 2")
    func httpAddress() async throws {
        let fixture = try await BrokerFixture()
        let harness = try await JobHarness(fixture: fixture, shards: 2, faults: Self.faults, builtin: "identity")
        let port = try FreePort.find()
        // Real local workers run the job: had they inherited the address, none could bind it.
        let output = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", harness.job, "--workers", "2",
                                            "--brokers", fixture.bootstrapServers, "--backend", "local", "--json"],
                                           environment: ["FLOTILLA_HTTP_ADDRESS": ":\(port)"])
        #expect(output.status == 0, "stderr: \(output.stderr)")
        #expect(output.stderr.contains("status at http://127.0.0.1:\(port)/status"))
        #expect(output.stderr.contains("dashboard at http://127.0.0.1:\(port)/"))

        let bad = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1", "--brokers", "127.0.0.1:1",
                                         "--http-address", "127.0.0.1:99999"])
        #expect(bad.status == 64 || bad.status == 2)
        #expect(bad.stderr.contains("port 0...65535"))
        let short = try CommandRunner.run([CommandRunner.flotillaExecutable, "controller", "j1", "--brokers", "127.0.0.1:1"],
                                          environment: ["FLOTILLA_HTTP_TOKEN": "short"])
        #expect(short.status == 2)
        #expect(short.stderr.contains("at least 16 characters"))
    }
}
