import Dispatch
import FlotillaCore

/// Runs blocking work (file I/O) on a Dispatch queue, off Swift's cooperative thread pool.
enum Blocking {
    /// A concurrent queue for file reads; Dispatch bounds its threads, the cooperative pool stays free.
    private static let queue = DispatchQueue(label: "flotilla.sources.blocking", qos: .userInitiated, attributes: .concurrent)

    static func run<T: Sendable>(_ work: @escaping @Sendable () throws(FlotillaError) -> T) async throws(FlotillaError) -> T {
        let result: Result<T, FlotillaError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(FlotillaError) {
                    continuation.resume(returning: .success(try work()))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        return try result.get()
    }
}
