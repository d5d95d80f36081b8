import Dispatch
import FlotillaCore
import Synchronization

/// Wakes one waiting loop when something it waits for may have changed: `signal()` from any
/// thread, `wait(upTo:)` in the loop. A signal sent while nobody waits is kept (one), so a change
/// made between a loop's check and its wait is never missed. Loops sleep until there is work
/// instead of polling with millisecond sleeps (an idle worker then costs almost no CPU).
///
/// Timeouts share one timer, armed lazily: a wait whose deadline is later than the armed time
/// leaves it alone, and a firing re-arms for the waiter's real deadline. A timer task per wait
/// (`Task.sleep` in a task group) scheduled and cancelled a libdispatch timer on every wake-up of
/// every loop, several per shard at thousands of shards per second.
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
        var deadline: DispatchTime = .distantFuture
        /// When the timer is set to fire; nil when it is not armed.
        var armedAt: DispatchTime?
    }

    private let state = Mutex(State())
    // A DispatchSource is thread-safe; it is only scheduled under `state`'s lock.
    private nonisolated(unsafe) let timer = DispatchSource.makeTimerSource(queue: .global())

    init() {
        timer.schedule(deadline: .distantFuture)
        timer.setEventHandler { [weak self] in self?.timerFired() }
        timer.activate()
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
                    if state.armedAt.map({ $0 > deadline }) ?? true {
                        state.armedAt = deadline
                        timer.schedule(deadline: deadline)
                    }
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            signal()
        }
    }

    /// The armed time came: wakes the waiter if its deadline has passed, else re-arms for it.
    private func timerFired() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.armedAt = nil
            guard let waiter = state.waiter else { return nil }
            guard DispatchTime.now() >= state.deadline else {
                state.armedAt = state.deadline
                timer.schedule(deadline: state.deadline)
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }
}
