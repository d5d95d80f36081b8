import Dispatch
import Synchronization

/// One reusable timer for a deadline that keeps moving (a predictor's batch deadlines, a loop's
/// wait timeouts): a timer per deadline would leave thousands of cancelled timers queued.
///
/// Armed lazily: a later deadline than the one armed leaves the timer alone, and the handler
/// re-arms for the real deadline when it fires early. Re-scheduling on every batch woke
/// libdispatch's timer thread a few times per batch (~480 wake-ups/s at 175 batches/s, measured).
public final class DeadlineTimer: @unchecked Sendable {
    // Unchecked: DispatchSource objects are thread-safe; `armedAt` is behind its mutex.
    private let source: any DispatchSourceTimer
    private let armedAt = Mutex<DispatchTime?>(nil)

    public init() {
        source = DispatchSource.makeTimerSource(queue: .global())
        source.schedule(deadline: .distantFuture)
        source.activate()
    }

    /// `handler` runs when an armed time is reached; it must re-arm if its deadline moved on.
    public func onFire(_ handler: @escaping @Sendable () -> Void) {
        source.setEventHandler { [weak self] in
            self?.armedAt.withLock { $0 = nil }
            handler()
        }
    }

    /// Fires at `deadline` or earlier (when an earlier time is already armed).
    public func arm(at deadline: DispatchTime) {
        let schedule = armedAt.withLock { armed in
            if let armed, armed <= deadline { return false }
            armed = deadline
            return true
        }
        if schedule { source.schedule(deadline: deadline) }
    }

    public func cancel() { source.cancel() }
}
