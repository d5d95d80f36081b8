import Dispatch
import FlotillaCore
import Synchronization

/// Wakes one waiting loop when something it waits for may have changed: `signal()` from any
/// thread, `wait(upTo:)` in the loop. A signal sent while nobody waits is kept (one), so a change
/// made between a loop's check and its wait is never missed. Loops sleep until there is work
/// instead of polling with millisecond sleeps (an idle worker then costs almost no CPU).
///
/// Timeouts share one lazily armed ``DeadlineTimer``: a firing before the waiter's deadline re-arms
/// for it. A timer task per wait (`Task.sleep` in a task group) scheduled and cancelled a
/// libdispatch timer on every wake-up of every loop, several per shard at thousands of shards per
/// second.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        /// The waiter's timeout.
        var deadline: DispatchTime = .distantFuture
    }

    private let state = Mutex(State())
    private let timer = DeadlineTimer()

    init() {
        timer.onFire { [weak self] in self?.timerFired() }
    }

    deinit { timer.cancel() }

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next signal (at once if one is pending), or after `timeout`, or on cancellation.
    func wait(upTo timeout: Duration) async {
        let deadline = DispatchTime.now() + timeout.seconds
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    state.waiter = continuation
                    state.deadline = deadline
                    return false
                }
                if now { continuation.resume() } else { timer.arm(at: deadline) }
            }
        } onCancel: {
            signal()
        }
    }

    /// The armed time came: wakes the waiter if its deadline has passed, else re-arms for it.
    private func timerFired() {
        enum Next { case none, wake(CheckedContinuation<Void, Never>), rearm(DispatchTime) }
        let next = state.withLock { state -> Next in
            guard let waiter = state.waiter else { return .none }
            guard DispatchTime.now() >= state.deadline else { return .rearm(state.deadline) }
            state.waiter = nil
            return .wake(waiter)
        }
        switch next {
        case .none: break
        case .wake(let waiter): waiter.resume()
        case .rearm(let deadline): timer.arm(at: deadline)
        }
    }
}
