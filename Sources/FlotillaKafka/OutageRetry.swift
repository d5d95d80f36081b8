import RdKafka

/// Rides out a broker outage: a Kafka call that failed with an error that may pass (the broker
/// unreachable, paused, restarting or too busy to answer in time) is tried again with a growing
/// pause, until `limit` has passed since the first try. A fatal error (fenced) ends it at once.
/// Workers and the controller share it, so both give up on the same outage.
public enum OutageRetry {
    /// librdkafka's default delivery timeout, beyond which records already queued fail anyway.
    public static let limit: Duration = .seconds(300)

    /// Runs `body`; a non-fatal `KafkaError` is reported to `retrying` (with the attempt number,
    /// from 1) and retried after `pauseStep` × attempt (at most 5 s). The error that ends it comes
    /// out as `giveUp(error, attempts)`; any other error and cancellation pass through.
    public static func run<T>(pauseStep: Duration, retrying: (KafkaError, Int) -> Void,
                              giveUp: (KafkaError, Int) -> any Error, _ body: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        var attempt = 0
        while true {
            do {
                return try await body()
            } catch let error as KafkaError {
                attempt += 1
                guard !error.isFatal, ContinuousClock.now - started < limit else { throw giveUp(error, attempt) }
                retrying(error, attempt)
                try await Task.sleep(for: min(.seconds(5), pauseStep * attempt))
            }
        }
    }
}
