#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore
import Foundation
import Logging
import Synchronization

/// Workers as local child processes: `<executable> <baseArguments...> --worker-id W <extra...>`,
/// each logging (stdout and stderr) to `<logDirectory>/<W>.log`.
///
/// Children run in their own process group (a terminal's Ctrl-C reaches the controller, which
/// stops them in order) and, where `setpriv` exists, get SIGKILL when the controller dies, so a
/// `kill -9` of the controller leaves no orphans. Exits are reaped by `list()`.
public final class LocalPodBackend: PodBackend {
    /// The program to start, an absolute path (the `flotilla` binary).
    public let executable: String
    /// Arguments before `--worker-id`, e.g. `["worker", ID, "--brokers", B]`.
    public let baseArguments: [String]
    /// Where each worker's log goes.
    public let logDirectory: String
    private let environment: [String: String]
    private let logger: Logger
    private let spawner = SpawnThread(name: "flotilla-spawn")
    private let children = Mutex<[String: Child]>([:])

    private struct Child {
        var pod: WorkerPod
        var pid: pid_t
    }

    /// `environment` is added to this process's environment for every worker.
    public init(executable: String, baseArguments: [String], logDirectory: String, environment: [String: String] = [:],
                logger: Logger) throws(FlotillaError) {
        guard executable.hasPrefix("/"), FileManager.default.isExecutableFile(atPath: executable) else {
            throw FlotillaError(.invalidConfiguration, "worker executable '\(executable)' is not an executable file (give an absolute path)")
        }
        do {
            try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        } catch {
            throw FlotillaError(.invalidConfiguration, "cannot create the worker log folder '\(logDirectory)'", underlying: error)
        }
        self.executable = executable
        self.baseArguments = baseArguments
        self.logDirectory = logDirectory
        self.environment = environment
        self.logger = logger
    }

    deinit {
        // Children outliving the backend would be orphans: kill what is left.
        children.withLock { children in
            for child in children.values where !child.pod.exited { _ = Glibc.kill(-child.pid, SIGKILL) }
        }
        spawner.stop()
    }

    /// The path of the running executable (`/proc/self/exe`), for starting `flotilla worker`.
    public static var currentExecutable: String {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.path
    }

    /// The log file of worker `id`.
    public func logFile(of id: String) -> String {
        "\(logDirectory)/\(id).log"
    }

    public func start(worker id: String) async throws(FlotillaError) -> WorkerPod {
        let running = children.withLock { $0[id].map { !$0.pod.exited } ?? false }
        if running { throw FlotillaError(.internal, "worker \(id) is already running") }
        // Parent-death signal: the worker dies with the controller (see SpawnThread).
        let argv = ChildSpawn.dyingWithParent([executable] + baseArguments + ["--worker-id", id])
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let log = logFile(of: id)
        let command = argv
        let result = await spawner.run { Self.spawn(argv: command, environment: env, logFile: log) }
        let pid: pid_t
        switch result {
        case .success(let value): pid = value
        case .failure(let error): throw error
        }
        let pod = WorkerPod(id: id, pid: pid, startedAt: Timestamp.now())
        children.withLock { $0[id] = Child(pod: pod, pid: pid) }
        logger.info("started worker", metadata: [LoggingKeys.worker: "\(id)", "flotilla.pid": "\(pid)", "flotilla.log": "\(log)"])
        return pod
    }

    public func stop(worker id: String, grace: Duration) async {
        guard signal(id, SIGTERM, stopRequested: true) else { return }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if hasExited(id) { return }
            try? await Task.sleep(for: .milliseconds(20))
        }
        logger.warning("worker did not stop in time; killing it", metadata: [LoggingKeys.worker: "\(id)"])
        await killNow(id)
    }

    public func list() async -> [WorkerPod] {
        children.withLock { children in
            for id in children.keys { Self.reap(&children[id]!) }
            return children.values.map(\.pod).sorted { $0.id < $1.id }
        }
    }

    public func replace(worker id: String) async throws(FlotillaError) -> WorkerPod {
        await killNow(id)
        return try await start(worker: id)
    }

    public func forget(worker id: String) async {
        children.withLock { children in
            if let child = children[id], child.pod.exited { children[id] = nil }
        }
    }

    // MARK: - Processes

    /// SIGKILL and wait until reaped (a killed process exits within milliseconds).
    private func killNow(_ id: String) async {
        guard signal(id, SIGKILL, stopRequested: true) else { return }
        for _ in 0..<500 {
            if hasExited(id) { return }
            try? await Task.sleep(for: .milliseconds(10))
        }
        logger.error("worker did not exit after SIGKILL", metadata: [LoggingKeys.worker: "\(id)"])
    }

    /// Signals the worker's process group if it still runs; false when it has exited.
    private func signal(_ id: String, _ number: Int32, stopRequested: Bool) -> Bool {
        children.withLock { children in
            guard children[id] != nil else { return false }
            Self.reap(&children[id]!)
            guard let child = children[id], !child.pod.exited else { return false }
            if stopRequested { children[id]!.pod.stopRequested = true }
            // Reaping and signalling share this lock, so the pid cannot have been recycled.
            if Glibc.kill(-child.pid, number) != 0 { _ = Glibc.kill(child.pid, number) }
            return true
        }
    }

    private func hasExited(_ id: String) -> Bool {
        children.withLock { children in
            guard children[id] != nil else { return true }
            Self.reap(&children[id]!)
            return children[id]!.pod.exited
        }
    }

    /// Collects the child's exit status if it has exited (never blocks).
    private static func reap(_ child: inout Child) {
        guard !child.pod.exited else { return }
        var status: Int32 = 0
        let result = waitpid(child.pid, &status, WNOHANG)
        guard result == child.pid || (result < 0 && errno == ECHILD) else { return }
        child.pod.exited = true
        if result == child.pid { child.pod.exitStatus = ChildSpawn.shellStatus(status) }
    }

    /// Spawns with stdin from /dev/null and stdout + stderr appended to `logFile`.
    private static func spawn(argv: [String], environment: [String], logFile: String) -> Result<pid_t, FlotillaError> {
        let spawn = ChildSpawn(ownProcessGroup: true)
        spawn.open(0, path: "/dev/null", flags: O_RDONLY)
        // Owner-only: a worker's log may quote its configuration.
        spawn.open(1, path: logFile, flags: O_WRONLY | O_CREAT | O_APPEND, mode: 0o600)
        spawn.duplicate(1, to: 2)
        return spawn.spawn(argv: argv, environment: environment).mapError { failure in
            FlotillaError(.internal, "cannot start worker '\(argv.joined(separator: " "))': \(failure)")
        }
    }
}
