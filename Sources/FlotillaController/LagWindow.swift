/// The largest heartbeat lag (sent → applied) of the last 5 to 10 seconds. A smoothed mean hides
/// the delays that make a steal reach its donor late: with 100 workers on two cores the mean
/// dipped below 100 ms between seconds-long stalls, and steals decided on it ran twice (5.6 %).
struct LagWindow: Sendable, Hashable {
    static let bucketMs: Int64 = 5_000
    private var bucketStart: Int64?
    private var current = 0.0
    private var previous = 0.0

    mutating func add(_ lagMs: Double, at time: Int64) {
        if let start = bucketStart, time - start < Self.bucketMs {
            current = Swift.max(current, lagMs)
            return
        }
        previous = bucketStart == nil ? 0 : current
        current = lagMs
        bucketStart = time
    }

    /// The largest lag seen in this bucket and the one before.
    var max: Double { Swift.max(current, previous) }
}
