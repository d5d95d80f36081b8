#if canImport(Glibc)
import Glibc
#endif

/// One `posix_spawn` of a child process that starts clean: an empty signal mask, default
/// dispositions for the signals a parent may ignore (ignored signals survive exec: a broker or
/// worker started by a process that ignores SIGTERM would ignore it too), no descriptors of the
/// parent beyond 0–2, and optionally its own process group.
///
/// Callers add where the child's stdin, stdout and stderr go, then call `spawn` once. Not
/// thread-safe: one owner builds and spawns it.
public final class ChildSpawn {
    private var actions = posix_spawn_file_actions_t()
    private var attributes = posix_spawnattr_t()

    /// Signals whose dispositions the child gets back at their defaults.
    static let resetSignals = [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD]

    /// - Parameter ownProcessGroup: the child leads a new process group, so a signal to `-pid`
    ///   reaches the helpers it starts, and a terminal's Ctrl-C reaches the parent only.
    public init(ownProcessGroup: Bool) {
        posix_spawn_file_actions_init(&actions)
        posix_spawnattr_init(&attributes)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in Self.resetSignals { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if ownProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))
    }

    deinit {
        posix_spawn_file_actions_destroy(&actions)
        posix_spawnattr_destroy(&attributes)
    }

    /// The child's descriptor `fd` opens `path` (e.g. `/dev/null`, a log file).
    public func open(_ fd: Int32, path: String, flags: Int32, mode: mode_t = 0) {
        posix_spawn_file_actions_addopen(&actions, fd, path, flags, mode)
    }

    /// The child's descriptor `target` is a copy of the parent's `source` (a pipe end, or another
    /// of the child's, as `2` from `1`).
    public func duplicate(_ source: Int32, to target: Int32) {
        posix_spawn_file_actions_adddup2(&actions, source, target)
    }

    /// The child starts in `path`; false when this C library cannot do it.
    public func changeDirectory(to path: String) -> Bool {
        guard let chdir = Self.addChdir else { return false }
        return chdir(&actions, path) == 0
    }

    /// Spawns `argv` with exactly `environment` (`KEY=VALUE` entries). Returns the pid, or the
    /// error number (`ENOENT`, `EACCES`, …) when the child could not start.
    /// - Parameter searchPath: look `argv[0]` up in `PATH` (`posix_spawnp`).
    public func spawn(argv: [String], environment: [String], searchPath: Bool = false) -> Result<pid_t, SpawnFailure> {
        // Other descriptors of the parent (Kafka sockets, listeners, pipes of other children)
        // stay out of the child.
        if let closefrom = Self.addClosefrom { _ = closefrom(&actions, 3) }
        let cArgv: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        let cEnv: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in cArgv { free(pointer) }
            for pointer in cEnv { free(pointer) }
        }
        var pid: pid_t = 0
        let code = searchPath
            ? posix_spawnp(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
            : posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
        return code == 0 ? .success(pid) : .failure(SpawnFailure(code: code))
    }

    /// A `waitpid` status as a shell reports it: the exit code, or 128 + the signal number.
    public static func shellStatus(_ waitStatus: Int32) -> Int32 {
        let signal = waitStatus & 0x7f
        return signal == 0 ? (waitStatus >> 8) & 0xff : 128 + signal
    }

    /// This process's environment as `KEY=VALUE` entries, with `overrides` applied.
    public static func environment(with overrides: [String: String]) -> [String] {
        var merged: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") { merged[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            entry += 1
        }
        for (key, value) in overrides { merged[key] = value }
        return merged.map { "\($0.key)=\($0.value)" }
    }

    /// `argv` run through `setpriv --pdeathsig KILL`, so the child is killed when the thread that
    /// spawned it exits (spawn from a `SpawnThread`); `argv` unchanged where setpriv is missing.
    public static func dyingWithParent(_ argv: [String]) -> [String] {
        guard access(setpriv, X_OK) == 0 else { return argv }
        return [setpriv, "--pdeathsig", "KILL", "--"] + argv
    }

    private static let setpriv = "/usr/bin/setpriv"

    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
    private typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    nonisolated(unsafe) private static let library = dlopen(nil, RTLD_NOW)
    private static let addChdir: AddChdir? = dlsym(library, "posix_spawn_file_actions_addchdir_np").map { unsafeBitCast($0, to: AddChdir.self) }
    private static let addClosefrom: AddClosefrom? = dlsym(library, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddClosefrom.self) }
}

/// Why `posix_spawn` refused: the error number and its text.
public struct SpawnFailure: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public var description: String { String(cString: strerror(code)) }
}
