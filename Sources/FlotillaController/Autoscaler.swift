import FlotillaCore

/// Chooses the fleet size from the job's backlog and the workers' measured speed: a value,
/// observations in and a decision out, tested with an injected clock.
///
/// The rule, in order:
/// 1. Nothing is decided until one worker's start-up time (start → first heartbeat) and the fleet's
///    rate are measured: no guesses.
/// 2. `wanted = ceil(samplesLeft / (rate per worker × 2 × start-up))`: enough workers to finish the
///    backlog in about two start-up times. A worker started for less work than that would spend
///    most of its life starting; more workers finish sooner only while the backlog lasts.
/// 3. Never more workers than unfinished shards (a worker without a shard idles), clamped to
///    `workers.min … workers.max`.
/// 4. Up at once, but not again within one start-up time of the last scale-up (the new workers
///    must start and be measured first); down only after the smaller size was wanted for
///    `scaleDownAfter` without a break, and then by draining (a worker finishes what it holds).
/// 5. Each scale-up is a trial: once all its workers are busy (and a rate window more), or at the latest
///    three start-ups and 10 s after it, the fleet's total rate must have grown by at least a
///    quarter of what the new workers promised. If it did not (workers sharing
///    one machine's cores, a saturated broker or source), the size before is a ceiling for the
///    rest of the job and the extra workers are drained at once.
struct Autoscaler: Sendable {
    let min: Int
    let max: Int
    /// How long a smaller size must be wanted before workers are drained.
    let scaleDownAfterMs: Int64
    /// Start-up times measured (ms), the latest last.
    private(set) var startups: [Int64] = []
    /// Samples/s of one busy worker: the fleet's rate over the busy workers.
    private(set) var ratePerWorker: Double?
    private var lastScaleUp: Int64?
    /// Samples/s done by the whole fleet over the last `window` (the ledger's count, not the
    /// workers' own per-heartbeat figures, which come in bursts as shards commit in batches).
    private(set) var fleetRate: Double = 0
    /// Workers busy at the latest measure.
    private(set) var busyWorkers = 0
    /// The span of the rate it is given (`RateWindow`'s): a trial waits for a whole window.
    static let windowMs = RateWindow().windowMs
    /// The latest scale-up, until its gain is judged.
    private var trial: (from: Int, to: Int, rateBefore: Double, at: Int64)?
    /// A size past which more workers were measured not to help: never exceeded again.
    private(set) var ceiling: Int?
    /// Since when a smaller size is wanted without a break.
    private var smallerSince: Int64?
    /// The latest decisions, newest last (at most `keep`).
    private(set) var decisions: [ScaleDecision] = []
    static let keep = 20

    init(min: Int, max: Int, scaleDownAfterMs: Int64 = 30_000) {
        self.min = min
        self.max = max
        self.scaleDownAfterMs = scaleDownAfterMs
    }

    /// A worker started `milliseconds` before its first heartbeat.
    mutating func measuredStartup(_ milliseconds: Int64) {
        startups.append(Swift.max(1, milliseconds))
        if startups.count > 5 { startups.removeFirst() }
    }

    /// The fleet's rate (the controller's `RateWindow` over the ledger's done count: a first
    /// estimate after a second, enough to tell 1 worker from 4; nil before) and how many workers
    /// run a shard.
    mutating func measured(fleetRate rate: Double?, busyWorkers busy: Int) {
        busyWorkers = busy
        guard let rate else { return }
        fleetRate = rate
        if busy > 0, fleetRate > 0 { ratePerWorker = fleetRate / Double(busy) }
    }

    /// The median start-up time measured, in ms.
    var startupMs: Int64? {
        guard !startups.isEmpty else { return nil }
        return startups.sorted()[startups.count / 2]
    }

    /// The size wanted for this backlog, before hysteresis; nil while the inputs are unmeasured.
    /// No backlog wants no worker (`min` may keep some); a backlog with no worker wants one,
    /// measured or not: nothing else can make progress.
    func wanted(samplesLeft: Int, shardsLeft: Int, current: Int = 1) -> Int? {
        if shardsLeft <= 0 { return min }
        guard let rate = ratePerWorker, rate > 0, let startupMs else { return current == 0 ? Swift.max(1, min) : nil }
        let horizon = rate * 2 * Double(startupMs) / 1_000  // samples one worker does in two start-ups
        let byWork = Int((Double(samplesLeft) / Swift.max(horizon, 1)).rounded(.up))
        return Swift.min(Swift.max(byWork, 1), Swift.max(shardsLeft, 0), ceiling ?? max).clamped(min, max)
    }

    /// The fleet size to run now, given `current`; records a decision when it changes.
    mutating func decide(current: Int, samplesLeft: Int, shardsLeft: Int, now: Int64) -> Int {
        if let trial, let startupMs,
           (busyWorkers >= trial.to && now - trial.at >= startupMs + Self.windowMs) || now - trial.at >= 3 * startupMs + 10_000 {
            self.trial = nil
            let promised = Double(trial.to - trial.from) / Double(trial.from)
            if fleetRate < trial.rateBefore * (1 + 0.25 * promised) {
                ceiling = trial.from
                if current > trial.from {
                    let rates = String(format: "%.0f → %.0f samples/s", trial.rateBefore, fleetRate)
                    return record(current, trial.from, samplesLeft, shardsLeft, now,
                                  "\(trial.to) workers did no better than \(trial.from) (\(rates)): staying at \(trial.from)")
                }
            }
        }
        guard let wanted = wanted(samplesLeft: samplesLeft, shardsLeft: shardsLeft, current: current) else { return current }
        if wanted > current {
            smallerSince = nil
            if current == 0 {
                lastScaleUp = now
                return record(current, wanted, samplesLeft, shardsLeft, now, "\(shardsLeft) shards and no worker")
            }
            if let lastScaleUp, now - lastScaleUp < startupMs ?? 0 { return current }
            if trial != nil { return current }  // the last scale-up is not judged yet
            lastScaleUp = now
            if fleetRate > 0 { trial = (current, wanted, fleetRate, now) }
            return record(current, wanted, samplesLeft, shardsLeft, now, "backlog of \(samplesLeft) samples needs more workers")
        }
        guard wanted < current else {
            smallerSince = nil
            return current
        }
        let since = smallerSince ?? now
        smallerSince = since
        guard now - since >= scaleDownAfterMs else { return current }
        smallerSince = nil
        let why = shardsLeft == 0 ? "no backlog" : shardsLeft < current ? "\(shardsLeft) unfinished shards for \(current) workers" : "backlog of \(samplesLeft) samples needs fewer workers"
        return record(current, wanted, samplesLeft, shardsLeft, now, why)
    }

    private mutating func record(_ from: Int, _ to: Int, _ samplesLeft: Int, _ shardsLeft: Int, _ now: Int64, _ reason: String) -> Int {
        decisions.append(ScaleDecision(time: now, from: from, to: to, samplesLeft: samplesLeft, shardsLeft: shardsLeft,
                                  ratePerWorker: ((ratePerWorker ?? 0) * 10).rounded() / 10,
                                  startupSeconds: Double(startupMs ?? 0) / 1_000, reason: reason))
        if decisions.count > Self.keep { decisions.removeFirst() }
        return to
    }
}

/// One autoscaler decision, with what it was based on (logged, and shown in `/status`).
public struct ScaleDecision: Sendable, Hashable, Codable {
    /// When (epoch ms).
    public var time: Int64
    public var from: Int
    public var to: Int
    public var samplesLeft: Int
    public var shardsLeft: Int
    /// Mean samples/s of a busy worker.
    public var ratePerWorker: Double
    /// The median measured start-up time of a worker.
    public var startupSeconds: Double
    public var reason: String
}

extension Int {
    func clamped(_ low: Int, _ high: Int) -> Int { Swift.min(Swift.max(self, low), high) }
}
