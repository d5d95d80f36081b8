#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// Pipe I/O. What may block runs on dedicated threads, never on the cooperative pool; `writeNow`
/// never blocks. Frames from children are read by `PipeLoop`.
enum PipeIO {
    enum WriteOutcome {
        case complete
        /// The pipe is full after this many bytes.
        case partial(Int)
        case failed(String)
    }

    /// Writes what the pipe takes now of `bytes` from `start` on, without waiting (`fd` is
    /// non-blocking), from any thread: SIGPIPE is blocked on the calling thread first (a child gone
    /// between two batches would otherwise kill the whole worker), and the one a write to a closed
    /// pipe raises is taken back.
    ///
    /// With `lend`, the pipe takes references to the pages of `bytes` (`vmsplice`) instead of a
    /// copy: the caller must keep `bytes` alive and unchanged until the reader has read them. A
    /// 123 KB frame cost ~60 µs of the worker's CPU copied into a pipe here, ~10 µs lent.
    static func writeNow(_ fd: Int32, _ bytes: [UInt8], from start: Int = 0, lend: Bool = false) -> WriteOutcome {
        blockSIGPIPEOnThisThread()
        var written = start
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                transfer(fd, raw.baseAddress! + written, bytes.count - written, lend: lend)
            }
            if n > 0 { written += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .partial(written) }
            let error = String(cString: strerror(errno))
            if errno == EPIPE { discardPendingSIGPIPE() }
            return .failed(error)
        }
        return .complete
    }

    /// One `vmsplice` when lending and the C library has it, else one `write`; a descriptor that
    /// is not a pipe (EINVAL) or a kernel without it (ENOSYS) gets the `write`.
    private static func transfer(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, lend: Bool) -> Int {
        if lend, let vmsplice = Spawn.vmsplice {
            var piece = iovec(iov_base: UnsafeMutableRawPointer(mutating: base), iov_len: count)
            let n = vmsplice(fd, &piece, 1, 0)
            if n >= 0 || (errno != EINVAL && errno != ENOSYS) { return n }
        }
        return write(fd, base, count)
    }

    /// Writes `bytes` from `start` on, waiting for room in the pipe; returns an error description
    /// on failure (EPIPE when the child is gone).
    static func writeAll(_ fd: Int32, _ bytes: [UInt8], from start: Int = 0, lend: Bool = false) -> String? {
        var written = start
        while true {
            switch writeNow(fd, bytes, from: written, lend: lend) {
            case .complete: return nil
            case .failed(let error): return error
            case .partial(let count):
                written = count
                var room = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&room, 1, -1)  // until the child reads, or its end closes (then write fails)
            }
        }
    }

    /// Calls `line` for every line read from `fd` until end of stream, then closes `fd`.
    static func forEachLine(_ fd: Int32, _ line: (String) -> Void) {
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            pending.append(contentsOf: chunk[0..<n])
            var start = 0
            while let newline = pending[start...].firstIndex(of: 0x0A) {
                line(String(decoding: pending[start..<newline], as: UTF8.self))
                start = newline + 1
            }
            pending.removeFirst(start)
            // A child that never writes a newline must not grow this buffer without bound.
            if pending.count > 64 * 1024 {
                line(String(decoding: pending, as: UTF8.self))
                pending.removeAll()
            }
        }
        if !pending.isEmpty { line(String(decoding: pending, as: UTF8.self)) }
        close(fd)
    }

    /// Starts a dedicated thread (named for `top`/debuggers) running `body`.
    static func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread {
            body()
        }
        thread.name = name
        thread.start()
    }

    /// Blocks SIGPIPE on the calling thread so a write to a dead child fails with EPIPE instead of
    /// killing this process. Thread-local: the process's own signal dispositions stay untouched.
    static func blockSIGPIPEOnThisThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Takes the SIGPIPE a failed write left pending on this thread (blocked), so it is not
    /// delivered should the thread ever unblock it.
    static func discardPendingSIGPIPE() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGPIPE)
        var now = timespec(tv_sec: 0, tv_nsec: 0)
        _ = sigtimedwait(&set, nil, &now)
    }
}

/// A dedicated thread that runs submitted jobs in order (the writer of one child's stdin).
final class SerialThread: Sendable {
    private let jobs = Mutex<(queue: [@Sendable () -> Void], finished: Bool)>(([], false))
    private let wake = DispatchSemaphore(value: 0)

    init(name: String, setup: @escaping @Sendable () -> Void = {}) {
        PipeIO.startThread(name: name) { [self] in
            setup()
            while true {
                wake.wait()
                let next: (@Sendable () -> Void)? = jobs.withLock { state in
                    state.queue.isEmpty ? nil : state.queue.removeFirst()
                }
                guard let next else { return }  // woken with an empty queue: finish
                next()
            }
        }
    }

    /// Queues `job`; ignored after `finish()`.
    func submit(_ job: @escaping @Sendable () -> Void) {
        let accepted = jobs.withLock { state in
            guard !state.finished else { return false }
            state.queue.append(job)
            return true
        }
        if accepted { wake.signal() }
    }

    /// Lets the thread end once the queued jobs have run.
    func finish() {
        let first = jobs.withLock { state in
            defer { state.finished = true }
            return !state.finished
        }
        if first { wake.signal() }
    }
}
