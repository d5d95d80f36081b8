/// Samples per second from a running count of done samples over the last few seconds: the
/// controller's own measure of the fleet's speed. The workers' per-heartbeat figures come in
/// bursts as shards commit in batches; this is what `/status`, the progress line, the dashboard
/// and the autoscaler show and use.
struct RateWindow: Sendable {
    /// How far back the rate looks.
    let windowMs: Int64
    /// The shortest span that gives a rate at all.
    let minimumMs: Int64
    private var points: [(time: Int64, done: Int)] = []
    /// Whether the count has changed since the first point.
    private var moved = false

    init(windowMs: Int64 = 5_000, minimumMs: Int64 = 1_000) {
        self.windowMs = windowMs
        self.minimumMs = minimumMs
    }

    /// `done` samples were done by `now`.
    mutating func add(done: Int, at now: Int64) {
        if let last = points.last, last.time == now { points.removeLast() }
        // Until the count first moves there is no speed to average in (a start, or a controller
        // that replayed its count and waits for the fleet): only the latest point is kept, so the
        // first rate measures work, not that wait (a rate over the first second, with one
        // 20-sample shard done, made 200 samples/s read 20). Later stalls stay in the average.
        if !moved {
            if let first = points.first, first.done != done { moved = true } else { points.removeAll() }
        }
        points.append((now, done))
        points.removeAll { now - $0.time > windowMs }
    }

    /// Samples per second over the window; nil until it spans `minimumMs`.
    var rate: Double? {
        guard let first = points.first, let last = points.last, last.time - first.time >= minimumMs else { return nil }
        return Double(last.done - first.done) * 1_000 / Double(last.time - first.time)
    }
}
