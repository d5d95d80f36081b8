#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// One thread that waits on every predictor's stdout with `poll`, reads the replies, and runs the
/// tasks that wait for them: it is a `TaskExecutor`, and a task that prefers it (a shard's units,
/// `PredictorPool.replyExecutor`) is resumed by a reply on this same thread, which then sends the
/// next batch and maps the outputs before it polls again.
///
/// Before it, a reply woke the pipe's reader thread, which woke a pool thread to act on it: two
/// wake-ups a batch, each several microseconds of the worker's CPU on a virtual machine. One
/// thread is enough for a node: a batch's work here (reply, bookkeeping, next frame, outputs) is
/// ~0.5 µs a sample, so it would serve ~2 million samples a second.
final class PipeLoop: TaskExecutor, @unchecked Sendable {
    // Unchecked: `watchers` and `polled` are touched only by the loop's thread; the rest is behind `shared`.

    /// The loop every predictor process of this worker uses.
    static let shared = PipeLoop()

    /// Called on the loop's thread when its descriptor is readable or at its end; returns false
    /// when done with it (the loop then stops polling it; the watcher closes it).
    typealias Watcher = @Sendable () -> Bool

    private struct Shared {
        var jobs: [UnownedJob] = []
        var added: [(fd: Int32, watcher: Watcher)] = []
        /// The loop sleeps in `poll`: work handed in must write to the wake pipe.
        var sleeping = false
    }
    private let shared = Mutex(Shared())
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private var watchers: [Int32: Watcher] = [:]
    private var polled: [pollfd] = []

    /// Internal for tests, which need a loop whose thread went to sleep before anything was watched.
    init() {
        var ends: [Int32] = [-1, -1]
        guard Spawn.pipe2(&ends, O_CLOEXEC) == 0 else { fatalError("flotilla: cannot create the pipe loop's wake pipe: \(String(cString: strerror(errno)))") }
        for fd in ends { Spawn.makeNonBlocking(fd) }
        (wakeRead, wakeWrite) = (ends[0], ends[1])
        // The wake pipe is polled from the first sleep on: a loop that slept on an empty set before
        // the first `watch` could not be woken, and the first predictor's hello waited for its
        // 60 s start-up timeout.
        rebuildPollSet()
        PipeIO.startThread(name: "flotilla-pipes") { [self] in run() }
    }

    /// Polls `fd` (non-blocking) from now on and calls `watcher` whenever it is readable.
    func watch(_ fd: Int32, _ watcher: @escaping Watcher) {
        hand { $0.added.append((fd, watcher)) }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        hand { $0.jobs.append(job) }
    }

    /// Changes the shared state and wakes the loop if it sleeps (never from its own thread: it
    /// does not sleep while it runs jobs or watchers).
    private func hand(_ change: (inout Shared) -> Void) {
        let wake = shared.withLock { shared in
            change(&shared)
            defer { shared.sleeping = false }
            return shared.sleeping
        }
        if wake {
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    private func run() {
        while true {
            let (jobs, added) = shared.withLock { shared in
                defer { (shared.jobs, shared.added) = ([], []) }
                return (shared.jobs, shared.added)
            }
            for job in jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
            if !added.isEmpty {
                for (fd, watcher) in added { watchers[fd] = watcher }
                rebuildPollSet()
            }
            if !jobs.isEmpty || !added.isEmpty { continue }  // what they handed in runs before any sleep
            let sleep = shared.withLock { shared in
                shared.sleeping = shared.jobs.isEmpty && shared.added.isEmpty
                return shared.sleeping
            }
            guard sleep else { continue }
            let ready = poll(&polled, nfds_t(polled.count), -1)
            shared.withLock { $0.sleeping = false }
            guard ready > 0 else { continue }  // EINTR
            var ended = false
            for entry in polled where entry.revents != 0 {
                if entry.fd == wakeRead {
                    var sink = [UInt8](repeating: 0, count: 64)
                    while read(wakeRead, &sink, sink.count) > 0 {}
                } else if let watcher = watchers[entry.fd], !watcher() {
                    watchers[entry.fd] = nil
                    ended = true
                }
            }
            if ended { rebuildPollSet() }
        }
    }

    private func rebuildPollSet() {
        polled = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            + watchers.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    }
}

/// One frame at a time from a non-blocking descriptor, as its bytes arrive.
struct FrameAssembler {
    enum Event {
        case frame([UInt8])
        case tooLarge(Int)
        /// Nothing more to read now.
        case wait
        /// End of stream (or a read error).
        case end
    }

    private var header = [UInt8](repeating: 0, count: 4)
    private var headerFilled = 0
    private var payload: [UInt8]?
    private var payloadFilled = 0

    /// The next complete frame, or why there is none yet.
    mutating func next(_ fd: Int32, limit: Int) -> Event {
        while true {
            if var bytes = payload {
                if payloadFilled == bytes.count {
                    payload = nil
                    headerFilled = 0
                    return .frame(bytes)
                }
                payload = nil  // keeps `bytes` unique while it is filled
                let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + payloadFilled, $0.count - payloadFilled) }
                payload = bytes
                if n > 0 { payloadFilled += n; continue }
                if let stop = Self.stop(n) { return stop }
                continue
            }
            let n = header.withUnsafeMutableBytes { read(fd, $0.baseAddress! + headerFilled, 4 - headerFilled) }
            if n <= 0 {
                if let stop = Self.stop(n) { return stop }
                continue
            }
            headerFilled += n
            guard headerFilled == 4 else { continue }
            let length = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
            guard length <= limit else { return .tooLarge(length) }
            payload = [UInt8](repeating: 0, count: length)
            payloadFilled = 0
        }
    }

    /// What a read that returned `n` ≤ 0 means: nil to read again (EINTR).
    private static func stop(_ n: Int) -> Event? {
        if n == 0 { return .end }
        if errno == EINTR { return nil }
        return errno == EAGAIN || errno == EWOULDBLOCK ? .wait : .end
    }
}

/// A stdout's frame in progress, owned by the pipe loop's thread.
final class FrameBox: @unchecked Sendable {
    var assembler = FrameAssembler()
}
