import FlotillaCore
@testable import FlotillaController
import Testing

/// The fleet rules and the autoscaler alone: pods and clocks are values, nothing runs.
@Suite("FleetPlanner and Autoscaler")
struct FleetPlannerTests {
    func pod(_ id: String, exited: Bool = false, status: Int32? = nil, stopRequested: Bool = false) -> WorkerPod {
        WorkerPod(id: id, startedAt: 0, exited: exited, exitStatus: status, stopRequested: stopRequested)
    }

    /// Plans at `now` and reports the started slots to the planner, as the controller does.
    func plan(_ fleet: inout FleetPlanner, _ pods: [WorkerPod] = [], now: Int64, drainLimitMs: Int64 = 60_000) -> [FleetAction] {
        let actions = fleet.plan(pods: pods, drainLimitMs: drainLimitMs, now: now)
        for case .start(let id) in actions { fleet.started(id, now: now) }
        return actions
    }

    @Test("starts the wanted workers as slots w1, w2 ...; an exit is recovered and restarted, with a backoff after quick exits")
    func restartsWithBackoff() {
        var fleet = FleetPlanner(config: FleetConfig(min: 2, max: 2), requested: nil)
        #expect(plan(&fleet, now: 0) == [.start("w1"), .start("w2")])
        #expect(plan(&fleet, now: 100).isEmpty)
        // w2 dies 1 s after its start: a quick exit, restarted after 0.5 s.
        #expect(plan(&fleet, [pod("w2", exited: true, status: 137)], now: 1_000) == [.forget("w2"), .workerGone("w2")])
        #expect(plan(&fleet, now: 1_400).isEmpty)
        #expect(plan(&fleet, now: 1_500) == [.start("w2")])
        #expect(fleet.restarts == 1)
        // Again quickly: 1 s, then 2 s ...
        _ = plan(&fleet, [pod("w2", exited: true, status: 1)], now: 2_000)
        #expect(plan(&fleet, now: 2_900).isEmpty)
        #expect(plan(&fleet, now: 3_000) == [.start("w2")])
        #expect(FleetPlanner.backoffMs(quickExits: 3) == 2_000)
        #expect(FleetPlanner.backoffMs(quickExits: 20) == 30_000)
        // After a long run, no backoff.
        #expect(plan(&fleet, [pod("w2", exited: true, status: 0)], now: 60_000) == [.forget("w2"), .workerGone("w2"), .start("w2")])
        #expect(fleet.lastError?.message == "worker w2 exited with status 0")
    }

    @Test("a start the backend refuses is tried again after a backoff of at least 0.5 s")
    func startFailure() {
        var fleet = FleetPlanner(config: FleetConfig(min: 1, max: 1), requested: nil)
        #expect(fleet.plan(pods: [], drainLimitMs: 1_000, now: 0) == [.start("w1")])
        fleet.startFailed("w1", now: 0)
        #expect(fleet.plan(pods: [], drainLimitMs: 1_000, now: 400).isEmpty)
        #expect(fleet.plan(pods: [], drainLimitMs: 1_000, now: 500) == [.start("w1")])
        #expect(fleet.cannotStart == nil)
    }

    @Test("refusals no retry mends (an RBAC denial) fail the job after three in a row; transient ones never do; a pod's exit reason is reported")
    func permanentStartRefusals() {
        var fleet = FleetPlanner(config: FleetConfig(min: 1, max: 1), requested: nil)
        let denied = WorkerFailure(message: "the Kubernetes API denied 'create' on pods in namespace 'ml'", permanent: true)
        for time in [Int64(0), 10_000] {
            _ = fleet.plan(pods: [], drainLimitMs: 1_000, now: time)
            fleet.startFailed("w1", WorkerFailure(message: "503", permanent: false), now: time)
            fleet.startFailed("w1", denied, now: time)
        }
        #expect(fleet.cannotStart == nil)
        fleet.startFailed("w1", denied, now: 20_000)
        #expect(fleet.cannotStart?.message.contains("3 workers in a row could not start; the last one (w1) said: the Kubernetes API denied 'create'") == true)

        var pods = FleetPlanner(config: FleetConfig(min: 1, max: 1), requested: nil)
        _ = plan(&pods, now: 0)
        let pulled = WorkerPod(id: "w1", startedAt: 0, exited: true, exitReason: "pod flotilla-j-w1-a1: ImagePullBackOff: Back-off pulling image")
        _ = plan(&pods, [pulled], now: 30_000)
        #expect(pods.lastError?.message == "worker w1 exited with status unknown (pod flotilla-j-w1-a1: ImagePullBackOff: Back-off pulling image)")
    }

    @Test("scale in drains the newest workers; a drained worker's exit is expected and not restarted; the drain limit stops it once")
    func drainLimits() {
        var fleet = FleetPlanner(config: FleetConfig(min: 1, max: 3), requested: 3)
        _ = plan(&fleet, now: 0)
        fleet.scale(to: 1)
        #expect(plan(&fleet, now: 1_000, drainLimitMs: 10_000) == [.retire("w2"), .drain("w2"), .retire("w3"), .drain("w3")])
        #expect(plan(&fleet, now: 5_000, drainLimitMs: 10_000).isEmpty)
        // w2 finishes and exits: gone from the fleet, nothing re-enqueued, no restart.
        #expect(plan(&fleet, [pod("w2", exited: true, status: 0, stopRequested: false)], now: 6_000, drainLimitMs: 10_000) == [.forget("w2")])
        #expect(fleet.slots["w2"] == nil)
        // w3 is still busy past the limit: stopped, once.
        #expect(plan(&fleet, now: 11_001, drainLimitMs: 10_000) == [.stop("w3")])
        #expect(plan(&fleet, now: 12_000, drainLimitMs: 10_000).isEmpty)
        #expect(fleet.active.map(\.id) == ["w1"])
    }

    @Test("a scale command fixes the size within min...max; a scale without a size hands it back to the autoscaler")
    func scaleCommands() {
        var fleet = FleetPlanner(config: FleetConfig(min: 1, max: 4), requested: nil)
        #expect(fleet.autoscaling && fleet.desired == 1)
        fleet.scale(to: 9)
        #expect(fleet.desired == 4 && !fleet.autoscaling)
        fleet.scale(to: nil)
        #expect(fleet.autoscaling)
        #expect(!FleetPlanner(config: FleetConfig(min: 1, max: 4), requested: 2).autoscaling, "--workers fixes the size")
        #expect(!FleetPlanner(config: FleetConfig(min: 3, max: 3), requested: nil).autoscaling, "nothing to choose")
    }

    /// A running count of done samples and the `RateWindow` over it, as the controller keeps them.
    struct Done {
        var count = 0
        var window = RateWindow()

        /// The count at `now`, measured into `scaler` with `busy` workers.
        mutating func measure(_ scaler: inout Autoscaler, busy: Int, now: Int64) {
            window.add(done: count, at: now)
            scaler.measured(fleetRate: window.rate, busyWorkers: busy)
        }
    }

    /// Feeds `scaler` one measure a second from `from` to `to` (inclusive): `workers` busy ones
    /// doing `perWorker` samples/s each.
    func feed(_ scaler: inout Autoscaler, perWorker: Double, workers: Int, from: Int64, to: Int64, done: inout Done) {
        for now in stride(from: from, through: to, by: 1_000) {
            done.measure(&scaler, busy: workers, now: now)
            done.count += Int(perWorker * Double(workers))
        }
    }

    @Test("the autoscaler decides nothing until a start-up time and a rate are measured")
    func noGuesses() {
        var scaler = Autoscaler(min: 1, max: 8)
        #expect(scaler.decide(current: 1, samplesLeft: 1_000_000, shardsLeft: 1_000, now: 0) == 1)
        scaler.measuredStartup(2_000)
        #expect(scaler.decide(current: 1, samplesLeft: 1_000_000, shardsLeft: 1_000, now: 0) == 1)
        var done = Done()
        feed(&scaler, perWorker: 0, workers: 0, from: 0, to: 10_000, done: &done)
        #expect(scaler.decide(current: 1, samplesLeft: 1_000_000, shardsLeft: 1_000, now: 10_000) == 1, "idle workers measure nothing")
        var fresh = Autoscaler(min: 1, max: 8)
        fresh.measuredStartup(2_000)
        var freshDone = Done()
        feed(&fresh, perWorker: 100, workers: 1, from: 0, to: 500, done: &freshDone)
        #expect(fresh.decide(current: 1, samplesLeft: 1_000_000, shardsLeft: 1_000, now: 500) == 1, "less than a second of measures")
        #expect(scaler.decisions.isEmpty)
    }

    @Test("the rate is the fleet's done samples over a 5 s window, not the workers' bursty per-heartbeat figures")
    func rateWindow() {
        var scaler = Autoscaler(min: 1, max: 8)
        var done = Done()
        // Shards commit in bursts: 1 000 samples every 5 s is 200 samples/s, whatever a heartbeat says.
        for now in stride(from: Int64(0), through: 20_000, by: 1_000) {
            if now % 5_000 == 0 { done.count += 1_000 }
            done.measure(&scaler, busy: 2, now: now)
        }
        #expect((160...250).contains(scaler.fleetRate), "\(scaler.fleetRate)")
        #expect((80...125).contains(scaler.ratePerWorker ?? 0), "\(scaler.ratePerWorker ?? 0)")
    }

    @Test("up to what finishes the backlog in about two start-ups, never past the unfinished shards or max; not again before the last scale-up is judged")
    func scalesUp() throws {
        var scaler = Autoscaler(min: 1, max: 8)
        scaler.measuredStartup(2_000)
        var done = Done()
        feed(&scaler, perWorker: 100, workers: 1, from: 0, to: 10_000, done: &done)  // one worker does 400 samples in two start-ups
        #expect(scaler.wanted(samplesLeft: 1_000, shardsLeft: 50) == 3)
        #expect(scaler.wanted(samplesLeft: 100_000, shardsLeft: 50) == 8, "max")
        #expect(scaler.wanted(samplesLeft: 100_000, shardsLeft: 5) == 5, "no worker without a shard")
        #expect(scaler.wanted(samplesLeft: 300, shardsLeft: 3) == 1, "less than two start-ups of work: no new worker")
        #expect(scaler.decide(current: 1, samplesLeft: 2_000, shardsLeft: 20, now: 10_000) == 5)
        let decision = try #require(scaler.decisions.last)
        #expect(decision.from == 1 && decision.to == 5 && decision.samplesLeft == 2_000 && decision.startupSeconds == 2)
        #expect(scaler.decide(current: 5, samplesLeft: 100_000, shardsLeft: 100, now: 11_000) == 5, "cooldown: one start-up")
        feed(&scaler, perWorker: 100, workers: 5, from: 11_000, to: 16_000, done: &done)
        #expect(scaler.decide(current: 5, samplesLeft: 100_000, shardsLeft: 100, now: 16_000) == 5, "the trial is not judged yet")
        feed(&scaler, perWorker: 100, workers: 5, from: 17_000, to: 17_000, done: &done)
        #expect(scaler.decide(current: 5, samplesLeft: 100_000, shardsLeft: 100, now: 17_000) == 8, "5 workers did 5x: on to max")
        #expect(scaler.ceiling == nil)
    }

    @Test("a scale-up that does not raise the fleet's rate (shared cores) is undone at once and not tried again")
    func noGainNoMore() throws {
        var scaler = Autoscaler(min: 1, max: 4)
        scaler.measuredStartup(1_000)
        var done = Done()
        feed(&scaler, perWorker: 300, workers: 1, from: 0, to: 6_000, done: &done)
        #expect(scaler.decide(current: 1, samplesLeft: 100_000, shardsLeft: 100, now: 6_000) == 4)
        // Four workers on the cores one used: each does a quarter.
        feed(&scaler, perWorker: 75, workers: 4, from: 7_000, to: 11_000, done: &done)
        #expect(scaler.decide(current: 4, samplesLeft: 90_000, shardsLeft: 90, now: 11_000) == 4, "judged once all are busy, a start-up and a window on")
        feed(&scaler, perWorker: 75, workers: 4, from: 12_000, to: 12_000, done: &done)
        #expect(scaler.decide(current: 4, samplesLeft: 90_000, shardsLeft: 90, now: 12_000) == 1)
        let decision = try #require(scaler.decisions.last)
        #expect(decision.reason.hasPrefix("4 workers did no better than 1"), "\(decision.reason)")
        #expect(scaler.ceiling == 1)
        feed(&scaler, perWorker: 300, workers: 1, from: 13_000, to: 60_000, done: &done)
        #expect(scaler.decide(current: 1, samplesLeft: 80_000, shardsLeft: 80, now: 60_000) == 1, "the ceiling holds")
    }

    @Test("down only after the smaller size was wanted for the whole delay, without a break; never flaps")
    func scalesDownSlowly() {
        var scaler = Autoscaler(min: 1, max: 8, scaleDownAfterMs: 30_000)
        scaler.measuredStartup(1_000)
        var done = Done()
        feed(&scaler, perWorker: 100, workers: 6, from: -5_000, to: 0, done: &done)
        #expect(scaler.decide(current: 6, samplesLeft: 200, shardsLeft: 2, now: 0) == 6)
        #expect(scaler.decide(current: 6, samplesLeft: 200, shardsLeft: 2, now: 20_000) == 6)
        // The backlog grows again for a moment: the wait starts over.
        #expect(scaler.decide(current: 6, samplesLeft: 1_100, shardsLeft: 60, now: 25_000) == 6, "6 wanted again")
        #expect(scaler.decide(current: 6, samplesLeft: 200, shardsLeft: 2, now: 26_000) == 6)
        #expect(scaler.decide(current: 6, samplesLeft: 200, shardsLeft: 2, now: 55_000) == 6)
        #expect(scaler.decide(current: 6, samplesLeft: 200, shardsLeft: 2, now: 56_000) == 1)
        #expect(scaler.decisions.last?.reason == "2 unfinished shards for 6 workers")
        // A steady backlog: one scale-up, then no decision at all, tick after tick.
        var steady = Autoscaler(min: 1, max: 8)
        steady.measuredStartup(1_000)
        var size = 1
        var steadyDone = Done()
        for tick in 0..<200 {
            steadyDone.measure(&steady, busy: size, now: Int64(tick) * 1_000)
            steadyDone.count += (100 + tick % 7) * size
            size = steady.decide(current: size, samplesLeft: 1_000, shardsLeft: 100, now: Int64(tick) * 1_000)
        }
        #expect(steady.decisions.count == 1, "one scale-up, then quiet: \(steady.decisions.map(\.to))")
    }

    @Test("the rate window starts when work does: a start-up with nothing done is not averaged in")
    func rateSkipsStartup() {
        var window = RateWindow()
        for now in stride(from: Int64(0), through: 2_000, by: 500) { window.add(done: 0, at: now) }
        #expect(window.rate == nil, "nothing done yet: no rate, however long the wait")
        window.add(done: 100, at: 2_500)
        #expect(window.rate == nil, "half a second of work: not enough to measure")
        window.add(done: 200, at: 3_000)
        #expect(window.rate == 200, "200 samples in the second since work began, not over the 3 s since the start")
        // Later, a stall stays in the average: only the start-up is left out.
        window.add(done: 200, at: 6_000)
        #expect(window.rate.map { $0 < 60 } == true)

        // A restarted controller starts from its replayed count: its wait for the fleet is left out too.
        var restarted = RateWindow()
        for now in stride(from: Int64(0), through: 2_000, by: 500) { restarted.add(done: 5_000, at: now) }
        restarted.add(done: 5_100, at: 2_500)
        restarted.add(done: 5_200, at: 3_000)
        #expect(restarted.rate == 200)
    }

    @Test("the planner measures start-up from start to the first working heartbeat and follows the autoscaler's size")
    func plannerAutoscales() {
        var fleet = FleetPlanner(config: FleetConfig(min: 1, max: 4), requested: nil)
        #expect(plan(&fleet, now: 0) == [.start("w1")])
        var window = RateWindow()
        for now in stride(from: Int64(500), through: 4_000, by: 500) {
            window.add(done: Int(now / 5), at: now)
            fleet.autoscale(samplesLeft: 10_000, shardsLeft: 100, fleetRate: window.rate, busyWorkers: 1, now: now)
            if now == 1_000 { #expect(fleet.desired == 1, "start-up not measured yet") }
            if now == 1_500 { fleet.heardWorking(from: "w1", now: 1_500) }
            if now == 3_000 { fleet.heardWorking(from: "w1", now: 3_000) }
        }
        #expect(fleet.autoscaler.startupMs == 1_500)
        #expect(fleet.desired == 4)
        #expect(plan(&fleet, now: 4_000) == [.start("w2"), .start("w3"), .start("w4")])
        fleet.scale(to: 2)
        window.add(done: 5_000, at: 60_000)
        fleet.autoscale(samplesLeft: 10_000, shardsLeft: 100, fleetRate: window.rate, busyWorkers: 4, now: 60_000)
        #expect(fleet.desired == 2, "a fixed size wins")
    }
}
