import EmbeddedBroker
import FlotillaTestSupport
import Foundation
import Testing

@Suite("flotilla broker", .timeLimit(.minutes(2)))
struct BrokerCommandTests {
    @Test("Debian's kcat produces to and consumes from `flotilla broker`; SIGTERM stops it cleanly")
    func kcatRoundTrip() async throws {
        let port = try FreePort.find()
        let output = Pipe()
        let broker = try await Self.startBroker(port: port, output: output)
        defer { if broker.isRunning { broker.terminate() } }
        #expect(FreePort.accepts(port: port), "the broker listens on 127.0.0.1:\(port)")

        let bootstrap = "127.0.0.1:\(port)"
        let lines = (1...50).map { "kcat-message-\($0)" }
        let produced = try CommandRunner.run(["kcat", "-P", "-b", bootstrap, "-t", "kcat-test", "-p", "0"],
                                             input: lines.joined(separator: "\n") + "\n")
        #expect(produced.status == 0, "kcat -P: \(produced.stderr)")
        let consumed = try CommandRunner.run(["kcat", "-C", "-b", bootstrap, "-t", "kcat-test", "-p", "0", "-o", "beginning", "-e", "-f", "%s\\n"])
        #expect(consumed.status == 0, "kcat -C: \(consumed.stderr)")
        #expect(consumed.stdout.split(separator: "\n").map(String.init) == lines)

        broker.terminate()
        broker.waitUntilExit()
        #expect(broker.terminationStatus == 0)
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed.contains("listening on \(bootstrap)"))
        #expect(printed.contains("stopped"))
        #expect(!FreePort.accepts(port: port), "the broker process is gone")
    }

    // A test run or `flotilla run` killed with -9 must not leave its broker behind.
    @Test("The embedded broker dies with the process that started it, even one killed with -9")
    func brokerDiesWithParent() async throws {
        let port = try FreePort.find()
        let parent = try await Self.startBroker(port: port, output: FileHandle.nullDevice)
        defer { if parent.isRunning { kill(parent.processIdentifier, SIGKILL) } }
        let children = try CommandRunner.run(["pgrep", "-P", String(parent.processIdentifier)])
        let broker = try #require(children.stdout.split(separator: "\n").first.flatMap { Int32($0) }, "the broker is a child of flotilla broker")
        kill(parent.processIdentifier, SIGKILL)
        let gone = ContinuousClock.now + .seconds(5)
        while kill(broker, 0) == 0 && ContinuousClock.now < gone { try await Task.sleep(for: .milliseconds(50)) }
        #expect(kill(broker, 0) != 0, "broker \(broker) outlived its parent")
        #expect(!FreePort.accepts(port: port))
    }

    /// `flotilla broker --port PORT`, once it accepts connections (or after 20 s).
    static func startBroker(port: Int, output: Any) async throws -> Process {
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: CommandRunner.flotillaExecutable)
        broker.arguments = ["broker", "--port", String(port)]
        broker.currentDirectoryURL = URL(fileURLWithPath: CommandRunner.repositoryRoot)
        broker.standardOutput = output
        try broker.run()
        let deadline = ContinuousClock.now + .seconds(20)
        while !FreePort.accepts(port: port) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        return broker
    }

    @Test("A port already in use is a clear configuration error (exit 2)")
    func portInUse() async throws {
        let fixture = try await BrokerFixture()
        let result = try CommandRunner.run([CommandRunner.flotillaExecutable, "broker", "--port", String(fixture.broker.port)],
                                           directory: CommandRunner.repositoryRoot)
        #expect(result.status == 2)
        #expect(result.stderr.contains("already in use"))
    }
}
