#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore
import Synchronization

/// A spawned child with pipes on its stdin, stdout and stderr, in its own process group.
///
/// Reaping is race-free: `waitForExit()` first waits without reaping (`waitid` with `WNOWAIT`),
/// then reaps under the same lock `signal(_:)` takes, so a signal never reaches a recycled pid.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// Write end of the child's stdin (owned: closed by `closeStdin()`).
    let stdinFD: Int32
    /// Read end of the child's stdout (closed by whoever reads it to EOF).
    let stdoutFD: Int32
    /// Read end of the child's stderr.
    let stderrFD: Int32

    private struct State {
        var status: ExitStatus?
        var stdinOpen = true
    }
    private let state = Mutex(State())

    private init(pid: pid_t, stdinFD: Int32, stdoutFD: Int32, stderrFD: Int32) {
        self.pid = pid
        self.stdinFD = stdinFD
        self.stdoutFD = stdoutFD
        self.stderrFD = stderrFD
    }

    /// Spawns `argv` (`argv[0]` looked up in `PATH`) with `environment` added to this process's.
    static func spawn(argv: [String], environment: [String: String], workingDirectory: String?) throws(FlotillaError) -> ChildProcess {
        var stdinPipe: [Int32] = [-1, -1], stdoutPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
        // Close-on-exec on every end, so that children spawned concurrently elsewhere do not inherit them.
        guard Spawn.pipe2(&stdinPipe, O_CLOEXEC) == 0 else { throw Spawn.failure("cannot create a pipe", errno) }
        guard Spawn.pipe2(&stdoutPipe, O_CLOEXEC) == 0 else {
            close(stdinPipe[0]); close(stdinPipe[1])
            throw Spawn.failure("cannot create a pipe", errno)
        }
        guard Spawn.pipe2(&stderrPipe, O_CLOEXEC) == 0 else {
            for fd in stdinPipe + stdoutPipe { close(fd) }
            throw Spawn.failure("cannot create a pipe", errno)
        }
        // Frames of a batch are ~100 KB: in a 64 KiB pipe each one takes several wake-ups of both
        // sides. Best effort: past the per-user pipe budget the kernel says no and 64 KiB stays.
        for fd in [stdinPipe[1], stdoutPipe[1]] { _ = fcntl(fd, Spawn.setPipeSize, Spawn.pipeBytes) }
        // Frames are written from the calling task while the pipe has room (PredictorProcess.send),
        // and read by the pipe loop as they arrive (PipeLoop): neither end of ours may block.
        Spawn.makeNonBlocking(stdinPipe[1])
        Spawn.makeNonBlocking(stdoutPipe[0])
        let childEnds = [stdinPipe[0], stdoutPipe[1], stderrPipe[1]]
        defer { for fd in childEnds { close(fd) } }

        let spawn = ChildSpawn(ownProcessGroup: true)
        spawn.duplicate(stdinPipe[0], to: 0)
        spawn.duplicate(stdoutPipe[1], to: 1)
        spawn.duplicate(stderrPipe[1], to: 2)
        if let workingDirectory, !spawn.changeDirectory(to: workingDirectory) {
            for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] { close(fd) }
            throw FlotillaError(.predictor, "this C library cannot set a child's working directory; leave workingDirectory unset")
        }
        // Own process group (see ChildSpawn): a kill reaches helpers the predictor started, and a
        // terminal's Ctrl-C goes to the parent only, which then shuts its predictors down in order.
        let pid: pid_t
        switch spawn.spawn(argv: argv, environment: ChildSpawn.environment(with: environment), searchPath: true) {
        case .success(let spawned): pid = spawned
        case .failure(let failure):
            for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] { close(fd) }
            let what = failure.code == ENOENT ? "executable '\(argv[0])' not found (looked in PATH)"
                : failure.code == EACCES ? "'\(argv[0])' is not executable (permission denied)"
                : "spawn failed: \(failure)"
            var where_ = ""
            if let workingDirectory { where_ = " in working directory '\(workingDirectory)'" }
            throw FlotillaError(.predictor, "cannot start \(argv.joined(separator: " "))\(where_): \(what)")
        }
        return ChildProcess(pid: pid, stdinFD: stdinPipe[1], stdoutFD: stdoutPipe[0], stderrFD: stderrPipe[0])
    }

    /// The exit status once reaped.
    var exitStatus: ExitStatus? { state.withLock { $0.status } }

    /// Sends `signal` to the child's process group unless the child has been reaped.
    func signal(_ signal: Int32) {
        state.withLock { state in
            guard state.status == nil else { return }
            _ = kill(-pid, signal)
        }
    }

    /// Closes the write end of the child's stdin (EOF for the child). Idempotent.
    func closeStdin() {
        let shouldClose = state.withLock { state in
            defer { state.stdinOpen = false }
            return state.stdinOpen
        }
        if shouldClose { close(stdinFD) }
    }

    /// Blocks up to `timeout` for the child to exit on its own; true if it has (not yet reaped).
    func hasExited(within timeout: Duration) -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while true {
            if exitStatus != nil { return true }
            var info = siginfo_t()
            // WNOHANG leaves si_pid at 0 while the child still runs.
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG) == 0, info._sifields._sigchld.si_pid == pid { return true }
            if clock.now >= deadline { return false }
            usleep(5_000)
        }
    }

    /// Blocks until the child has exited, reaps it and returns how it ended. Call on a dedicated thread.
    @discardableResult
    func waitForExit() -> ExitStatus {
        if let status = exitStatus { return status }
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR {}
        return state.withLock { state in
            if let status = state.status { return status }
            var raw: Int32 = 0
            var result: pid_t
            repeat { result = waitpid(pid, &raw, 0) } while result < 0 && errno == EINTR
            // WIFSIGNALED / WTERMSIG / WEXITSTATUS are macros Swift cannot import.
            let status: ExitStatus = (raw & 0x7f) != 0 ? .signaled(raw & 0x7f) : .exited((raw >> 8) & 0xff)
            state.status = status
            return status
        }
    }
}

/// The pipe calls of a child's spawn and feeding that Swift's Glibc module does not import (they
/// sit behind `_GNU_SOURCE`), looked up at run time.
enum Spawn {
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias VMSplice = @convention(c) (Int32, UnsafePointer<iovec>, Int, UInt32) -> Int

    nonisolated(unsafe) private static let handle = dlopen(nil, RTLD_NOW)
    private static let pipe2Function: Pipe2? = dlsym(handle, "pipe2").map { unsafeBitCast($0, to: Pipe2.self) }
    /// `vmsplice(2)`, for `PipeIO.writeNow(lend:)`; nil where the C library lacks it.
    static let vmsplice: VMSplice? = dlsym(handle, "vmsplice").map { unsafeBitCast($0, to: VMSplice.self) }

    /// `F_SETPIPE_SZ` (Linux; not exported by every C library's headers) and the size asked for:
    /// 256 KiB, room for a batch's frame. Not more: an unprivileged user's pipes share a 64 MiB
    /// budget (`/proc/sys/fs/pipe-user-pages-soft`), past which every new pipe of that user gets 8 KiB.
    static let setPipeSize: Int32 = 1031
    static let pipeBytes: Int32 = 1 << 18

    /// Sets `O_NONBLOCK` on `fd`.
    static func makeNonBlocking(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// `pipe2`, or `pipe` + `FD_CLOEXEC` where the C library lacks it.
    static func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 {
        if let pipe2Function { return pipe2Function(fds, flags) }
        guard pipe(fds) == 0 else { return -1 }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return 0
    }

    static func failure(_ what: String, _ code: Int32) -> FlotillaError {
        FlotillaError(.predictor, "\(what): \(String(cString: strerror(code)))")
    }
}
