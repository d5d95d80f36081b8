#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import FlotillaPredictor
import Synchronization
import Testing

@Suite("Pipe loop", .timeLimit(.minutes(1)))
struct PipeLoopTests {
    /// A non-blocking pipe: (read end, write end).
    func makePipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [-1, -1]
        try #require(pipe(&ends) == 0)
        Spawn.makeNonBlocking(ends[0])
        return (ends[0], ends[1])
    }

    func send(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress!, $0.count) }
    }

    @Test("frames are assembled from pieces that split the header and the payload anywhere")
    func framesInPieces() throws {
        let (readEnd, writeEnd) = try makePipe()
        defer { close(readEnd) }
        var frames = FrameAssembler()
        let payload = Array("{\"type\":\"hello\"}".utf8)
        let frame = [0, 0, 0, UInt8(payload.count)] + payload
        for cut in [1, 3, 4, 9] {
            send(writeEnd, Array(frame[..<cut]))
            guard case .wait = frames.next(readEnd, limit: 100) else { Issue.record("a frame cut at \(cut) came out whole"); return }
            send(writeEnd, Array(frame[cut...]))
            guard case .frame(let bytes) = frames.next(readEnd, limit: 100) else { Issue.record("no frame after the rest of it (cut at \(cut))"); return }
            #expect(bytes == payload)
        }
        // Two frames in one write come out one after the other; then nothing is waiting.
        send(writeEnd, frame + frame)
        for _ in 0..<2 { guard case .frame = frames.next(readEnd, limit: 100) else { Issue.record("two frames in one write"); return } }
        guard case .wait = frames.next(readEnd, limit: 100) else { Issue.record("a third frame out of nothing"); return }
        send(writeEnd, [0, 0, 1, 0])
        guard case .tooLarge(256) = frames.next(readEnd, limit: 100) else { Issue.record("a 256-byte frame over a 100-byte limit"); return }
        close(writeEnd)
        var rest = FrameAssembler()
        guard case .end = rest.next(readEnd, limit: 100) else { Issue.record("no end of stream"); return }
    }

    @Test("a task that prefers the loop runs on the thread that reads the pipes, and a watcher that is done is dropped")
    func tasksRunWhereRepliesAreRead() async throws {
        let (readEnd, writeEnd) = try makePipe()
        let threads = Mutex<(watcher: pthread_t?, task: pthread_t?, calls: Int)>((nil, nil, 0))
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            PipeLoop.shared.watch(readEnd) {
                var byte: UInt8 = 0
                let n = read(readEnd, &byte, 1)
                threads.withLock { $0.watcher = pthread_self(); $0.calls += 1 }
                guard n == 0 else { return true }
                close(readEnd)
                done.resume()
                return false
            }
            send(writeEnd, [1])
            close(writeEnd)
        }
        await withTaskExecutorPreference(PipeLoop.shared) {
            threads.withLock { $0.task = pthread_self() }
        }
        let seen = threads.withLock { $0 }
        #expect(seen.watcher != nil && seen.task != nil && pthread_equal(seen.watcher!, seen.task!) != 0)
        #expect(seen.calls == 2, "one byte, then the end; no call after the watcher said it was done")
    }

    @Test("a loop whose thread sleeps before anything is watched still wakes for the first watcher")
    func firstWatchWakesASleepingLoop() async throws {
        let loop = PipeLoop()
        try await Task.sleep(for: .milliseconds(100))  // its thread is asleep in poll by now
        let (readEnd, writeEnd) = try makePipe()
        defer { close(writeEnd) }
        let called = Mutex(false)
        loop.watch(readEnd) {
            called.withLock { $0 = true }
            close(readEnd)
            return false
        }
        send(writeEnd, [1])
        let deadline = ContinuousClock.now + .seconds(5)
        while !called.withLock({ $0 }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(called.withLock { $0 }, "the loop never polled the watched pipe: it slept on an empty poll set")
    }
}
