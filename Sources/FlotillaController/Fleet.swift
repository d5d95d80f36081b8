import FlotillaCore

/// The fleet's wanted size and its worker slots: ids, extra arguments, restart backoff.
///
/// Worker ids are stable slots ("w1", "w2", ...): a replacement reuses the id of the worker it
/// replaces, so brokers that fence zombie transactions by transactional id (Apache Kafka) fence
/// the old process.
struct Fleet: Sendable {
    let min: Int
    let max: Int
    /// Workers wanted now.
    private(set) var desired: Int
    private(set) var slots: [String: Slot] = [:]
    /// Workers restarted or replaced.
    var restarts = 0
    let arguments: [String: [String]]

    struct Slot: Sendable {
        var id: String
        /// Told to drain (scale down): its exit is expected; not restarted.
        var draining = false
        var drainingSince: Int64?
        /// Exits soon after a start in a row: the backoff grows with them.
        var quickExits = 0
        /// A start is due at this time (after an exit); nil when running or starting now.
        var restartAt: Int64?
        var running = false
        var startedAt: Int64 = 0
    }

    /// A process that exits within this long of its start counts as a quick exit.
    static let quickExitMs: Int64 = 10_000

    init(config: FleetConfig, requested: Int?, arguments: [String: [String]]) {
        min = Swift.max(1, config.min)
        max = Swift.max(min, config.max)
        desired = Swift.min(max, Swift.max(min, requested ?? config.min))
        self.arguments = arguments
    }

    /// A `scale` command: clamped to workers.min...workers.max.
    mutating func scale(to workers: Int) {
        desired = Swift.min(max, Swift.max(min, workers))
    }

    /// Slots that are not draining.
    var active: [Slot] { slots.values.filter { !$0.draining }.sorted { Self.order($0.id, $1.id) } }

    /// A new slot id: the lowest "wN" not in use.
    mutating func addSlot() -> String {
        var index = 1
        while slots["w\(index)"] != nil { index += 1 }
        let id = "w\(index)"
        slots[id] = Slot(id: id)
        return id
    }

    mutating func update(_ id: String, _ body: (inout Slot) -> Void) {
        if slots[id] != nil { body(&slots[id]!) }
    }

    mutating func remove(_ id: String) {
        slots[id] = nil
    }

    /// The delay before restarting after `quickExits` quick exits in a row: none after a worker
    /// that ran a while, then 0.5 s, 1 s, 2 s ... up to 30 s.
    static func backoffMs(quickExits: Int) -> Int64 {
        guard quickExits > 0 else { return 0 }
        return Swift.min(30_000, 500 << Int64(Swift.min(quickExits - 1, 10)))
    }

    /// "w2" before "w10".
    static func order(_ a: String, _ b: String) -> Bool {
        let na = Int(a.dropFirst()) ?? .max, nb = Int(b.dropFirst()) ?? .max
        return (na, a) < (nb, b)
    }
}
