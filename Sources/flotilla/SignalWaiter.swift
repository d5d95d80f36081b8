import Dispatch
import Foundation

/// Waits for SIGINT or SIGTERM.
enum SignalWaiter {
    /// Returns the signal's name when SIGINT or SIGTERM arrives, or nil as soon as `hasExited()` is true.
    static func waitForTerminationOrExit(_ hasExited: @escaping @Sendable () -> Bool) async -> String? {
        let received = SignalFlag()
        let watcher = SignalWatcher.onTermination { received.set($0) }
        defer { watcher.cancel() }
        while true {
            if let name = received.value { return name }
            if hasExited() { return nil }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// Calls a handler on SIGINT and SIGTERM until cancelled.
struct SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    static func onTermination(_ handler: @escaping @Sendable (String) -> Void) -> SignalWatcher {
        SignalWatcher(sources: [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")].map { number, name in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { handler(name) }
            source.resume()
            return source
        })
    }

    static func onTermination(_ handler: @escaping @Sendable () -> Void) -> SignalWatcher {
        onTermination { (_: String) in handler() }
    }

    func cancel() { sources.forEach { $0.cancel() } }
}

/// The first signal seen, set from a dispatch handler.
final class SignalFlag: @unchecked Sendable {
    // Guarded by `lock`; @unchecked because NSLock-protected state is not visible to the checker.
    private let lock = NSLock()
    private var name: String?

    var value: String? { lock.withLock { name } }
    func set(_ value: String) { lock.withLock { if name == nil { name = value } } }
}
