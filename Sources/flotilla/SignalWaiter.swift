import Dispatch
import Foundation

/// Waits for SIGINT or SIGTERM.
enum SignalWaiter {
    /// Returns the signal's name when SIGINT or SIGTERM arrives, or nil as soon as `hasExited()` is true.
    static func waitForTerminationOrExit(_ hasExited: @escaping @Sendable () -> Bool) async -> String? {
        let received = SignalFlag()
        let sources = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")].map { number, name in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { received.set(name) }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        while true {
            if let name = received.value { return name }
            if hasExited() { return nil }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// The first signal seen, set from a dispatch handler.
final class SignalFlag: @unchecked Sendable {
    // Guarded by `lock`; @unchecked because NSLock-protected state is not visible to the checker.
    private let lock = NSLock()
    private var name: String?

    var value: String? { lock.withLock { name } }
    func set(_ value: String) { lock.withLock { if name == nil { name = value } } }
}
