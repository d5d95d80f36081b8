import FlotillaCore
import Foundation
import Logging

/// The embedded Kafka-compatible broker (Tansu) as a child process listening on 127.0.0.1.
///
/// It keeps everything in memory: a restart loses all topics. Tansu is IPv4-only, so it both
/// listens on and advertises `127.0.0.1`.
public final class EmbeddedBroker: Sendable {
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    public let bootstrapServers: String
    public let port: Int
    private let process: Process

    /// Starts the broker on `port` (a free one when nil) and waits until it accepts connections.
    public init(port requestedPort: Int? = nil, executable: String? = nil, logFile: String? = nil,
                startupTimeout: Duration = .seconds(15)) async throws(FlotillaError) {
        let path: String
        if let executable { path = executable } else { path = try BrokerLocator.locate() }
        let port: Int
        if let requestedPort { port = requestedPort } else { port = try FreePort.find() }
        let url = "tcp://127.0.0.1:\(port)"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["broker", "--listener-url", url, "--advertised-listener-url", url]
        var environment = ProcessInfo.processInfo.environment
        environment["RUST_LOG"] = environment["RUST_LOG"] ?? "warn"
        process.environment = environment
        if let logFile {
            FileManager.default.createFile(atPath: logFile, contents: nil)
            let handle = FileHandle(forWritingAtPath: logFile)
            process.standardOutput = handle
            process.standardError = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        do {
            try process.run()
        } catch {
            throw FlotillaError(.invalidConfiguration, "cannot start the embedded broker \(path)", underlying: error)
        }
        self.process = process
        self.port = port
        self.bootstrapServers = "127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + startupTimeout
        while !FreePort.accepts(port: port) {
            guard process.isRunning else {
                throw FlotillaError(.internal, "the embedded broker exited at start (status \(process.terminationStatus)); is port \(port) in use?")
            }
            guard ContinuousClock.now < deadline else {
                stop()
                throw FlotillaError(.internal, "the embedded broker did not accept connections on \(bootstrapServers) within \(startupTimeout)")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    deinit { stop() }

    /// The broker's process id (tests pause it with SIGSTOP).
    public var pid: Int32 { process.processIdentifier }

    public var isRunning: Bool { process.isRunning }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still there after a second.
    public func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGCONT)  // a paused broker cannot handle SIGTERM
        process.terminate()
        // Its storage is in memory: nothing to lose, so it gets a moment, not a second (it
        // ignored SIGTERM for the full second, measured).
        let deadline = Date().addingTimeInterval(0.1)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits until the broker process exits by itself.
    public func waitUntilExit() { process.waitUntilExit() }
}
