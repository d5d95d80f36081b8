import Foundation

/// One long-lived thread that spawns the backend's children.
///
/// Children get a parent-death signal (`ChildSpawn.dyingWithParent`), which Linux sends when the
/// *thread* that spawned them exits. Pool threads come and go, so spawns run here, on a thread
/// that lives as long as the children should.
public final class SpawnThread: @unchecked Sendable {
    // `jobs` and `stopped` are guarded by `condition`.
    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []
    private var stopped = false

    public init(name: String) {
        let thread = Thread { [self] in self.loop() }
        thread.name = name
        thread.start()
    }

    /// Runs `body` on the spawn thread and returns its result.
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            condition.withLock {
                jobs.append { continuation.resume(returning: body()) }
                condition.signal()
            }
        }
    }

    /// Ends the thread once the queued jobs ran.
    public func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }
}
