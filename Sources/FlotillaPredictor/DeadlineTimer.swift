import Dispatch
import Synchronization

/// One reusable timer per process for hello and batch deadlines: a timer per batch would leave
/// thousands of cancelled timers queued at high batch rates.
///
/// Armed lazily: a later deadline than the one armed leaves the timer alone, and the handler
/// re-arms for the real deadline when it fires early. Re-scheduling on every batch woke
/// libdispatch's timer thread a few times per batch (~480 wake-ups/s at 175 batches/s, measured).
final class DeadlineTimer: @unchecked Sendable {
    // Unchecked: DispatchSource objects are thread-safe; `armedAt` is behind its mutex.
    private let source: any DispatchSourceTimer
    private let armedAt = Mutex<DispatchTime?>(nil)

    init() {
        source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    /// `handler` runs when an armed time is reached; it must re-arm if its deadline moved on.
    func onFire(_ handler: @escaping @Sendable () -> Void) {
        source.setEventHandler { [weak self] in
            self?.armedAt.withLock { $0 = nil }
            handler()
        }
    }

    /// Fires at `deadline` or earlier (when an earlier time is already armed).
    func arm(at deadline: DispatchTime) {
        let schedule = armedAt.withLock { armed in
            if let armed, armed <= deadline { return false }
            armed = deadline
            return true
        }
        if schedule { source.schedule(deadline: deadline) }
    }

    func cancel() { source.cancel() }
}
