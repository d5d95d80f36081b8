import FlotillaCore

/// Counts what running a job costs this controller: ticks and how long they took, heartbeats
/// and how late they were applied (the summary's `controller`, see `ControllerCost`).
struct ControllerCostMeter: Sendable {
    private let startCPU = ProcessUsage.cpuSeconds()
    private var ticks = 0
    private var tickTotalMs = 0.0
    private var tickMaxMs = 0.0
    private var heartbeats = 0
    private var lagTotalMs = 0.0
    private var lagMaxMs = 0.0

    mutating func tick(took duration: Duration) {
        let ms = duration.seconds * 1_000
        ticks += 1
        tickTotalMs += ms
        tickMaxMs = max(tickMaxMs, ms)
    }

    mutating func heartbeat(lagMs: Int64) {
        let lag = Double(max(0, lagMs))
        heartbeats += 1
        lagTotalMs += lag
        lagMaxMs = max(lagMaxMs, lag)
    }

    var cost: ControllerCost {
        ControllerCost(cpuSeconds: ProcessUsage.cpuSeconds() - startCPU, ticks: ticks,
                       meanTickMs: ticks > 0 ? tickTotalMs / Double(ticks) : 0, maxTickMs: tickMaxMs,
                       heartbeats: heartbeats, meanHeartbeatLagMs: heartbeats > 0 ? lagTotalMs / Double(heartbeats) : 0,
                       maxHeartbeatLagMs: lagMaxMs)
    }
}
