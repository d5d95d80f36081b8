import Synchronization

/// Wakes one waiting loop when something it waits for may have changed: `signal()` from any
/// thread, `wait(upTo:)` in the loop. A signal sent while nobody waits is kept (one), so a change
/// made between a loop's check and its wait is never missed. Loops sleep until there is work
/// instead of polling with millisecond sleeps (an idle worker then costs almost no CPU).
final class Wakeup: Sendable {
    private struct State {
        var pending = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

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
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.signal() }
            }
            await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let now = state.withLock { state -> Bool in
                        if state.pending {
                            state.pending = false
                            return true
                        }
                        state.waiter = continuation
                        return false
                    }
                    if now { continuation.resume() }
                }
            } onCancel: {
                signal()
            }
            // A timeout that fires just as a signal arrives leaves one spurious wake-up at most.
            group.cancelAll()
        }
    }
}
