import FlotillaCore
import Foundation
import Logging
import Synchronization

/// The embedded Kafka-compatible broker (Tansu) as a child process listening on 127.0.0.1.
///
/// It keeps everything in memory: a restart loses all topics. Tansu is IPv4-only, so it both
/// listens on and advertises `127.0.0.1`.
public final class EmbeddedBroker: Sendable {
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    public let bootstrapServers: String
    public let port: Int
    /// The broker's process id (tests pause it with SIGSTOP).
    public let pid: pid_t
    /// Its exit status (as a shell reports it) once reaped.
    private let exit = Mutex<Int32?>(nil)

    /// Spawns every broker: the broker gets a parent-death signal, so it dies with the process that
    /// started it (a test run or `flotilla run` killed with -9 leaves no broker behind); that
    /// signal follows the spawning thread, hence one thread that lives as long as the process.
    private static let spawner = SpawnThread(name: "flotilla-broker-spawn")

    /// Starts the broker on `port` (a free one when nil) and waits until it accepts connections.
    public init(port requestedPort: Int? = nil, executable: String? = nil, logFile: String? = nil,
                startupTimeout: Duration = .seconds(15)) async throws(FlotillaError) {
        let path: String
        if let executable { path = executable } else { path = try BrokerLocator.locate() }
        let port: Int
        if let requestedPort { port = requestedPort } else { port = try FreePort.find() }
        let url = "tcp://127.0.0.1:\(port)"
        let argv = ChildSpawn.dyingWithParent([path, "broker", "--listener-url", url, "--advertised-listener-url", url])
        var overrides: [String: String] = [:]
        if ProcessInfo.processInfo.environment["RUST_LOG"] == nil { overrides["RUST_LOG"] = "warn" }
        let environment = ChildSpawn.environment(with: overrides)
        let output = logFile ?? "/dev/null"
        let spawned = await Self.spawner.run {
            let spawn = ChildSpawn(ownProcessGroup: false)
            spawn.open(0, path: "/dev/null", flags: O_RDONLY)
            spawn.open(1, path: output, flags: O_WRONLY | O_CREAT | O_TRUNC, mode: 0o600)
            spawn.duplicate(1, to: 2)
            return spawn.spawn(argv: argv, environment: environment)
        }
        switch spawned {
        case .success(let pid): self.pid = pid
        case .failure(let failure):
            throw FlotillaError(.invalidConfiguration, "cannot start the embedded broker \(path): \(failure)")
        }
        self.port = port
        self.bootstrapServers = "127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + startupTimeout
        while !FreePort.accepts(port: port) {
            guard isRunning else {
                throw FlotillaError(.internal, "the embedded broker exited at start (status \(exit.withLock { $0 } ?? -1)); is port \(port) in use?")
            }
            guard ContinuousClock.now < deadline else {
                stop()
                throw FlotillaError(.internal, "the embedded broker did not accept connections on \(bootstrapServers) within \(startupTimeout)")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    deinit { stop() }

    public var isRunning: Bool { reap(blocking: false) == nil }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still there after a moment.
    public func stop() {
        guard isRunning else { return }
        kill(pid, SIGCONT)  // a paused broker cannot handle SIGTERM
        kill(pid, SIGTERM)
        // Its storage is in memory: nothing to lose, so it gets a moment, not a second.
        let deadline = ContinuousClock.now + .milliseconds(100)
        while isRunning && ContinuousClock.now < deadline { usleep(10_000) }
        if isRunning { kill(pid, SIGKILL) }
        waitUntilExit()
    }

    /// Waits until the broker process exits by itself.
    public func waitUntilExit() { _ = reap(blocking: true) }

    /// The exit status once the broker has exited (reaping it), nil while it runs. Reaping and
    /// the check share one lock, so `kill` above never reaches a recycled pid.
    private func reap(blocking: Bool) -> Int32? {
        exit.withLock { exit in
            if let exit { return exit }
            var status: Int32 = 0
            let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            guard result == pid || (result < 0 && errno == ECHILD) else { return nil }
            exit = result == pid ? ChildSpawn.shellStatus(status) : -1
            return exit
        }
    }
}
