import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Logging
import Testing

/// Two stages' pools sharing one budget of processes: the busy stage grows while the other idles,
/// and the idle one gives a process up when the other's batches wait (real python3 processes).
@Suite("Process budget across stages", .timeLimit(.minutes(2)))
struct ProcessBudgetTests {
    /// Sleeps 50 ms per batch, so batches queue up when sent many at a time.
    static let slow = "import time; from flotilla_predictor import serve; serve(lambda xs: [time.sleep(0.05) or x for x in xs])"

    static func pool(_ name: String, budget: ProcessBudget) throws -> PredictorPool {
        var config = Fixtures.config(name, script: "identity.py", batchSize: 1, processes: 1, maxProcesses: 3)
        config.command = .process(argv: ["python3", "-c", slow])
        config.autoscale = .init(growAfter: .milliseconds(100), shrinkAfterIdle: .seconds(60), interval: .milliseconds(50),
                                 yieldAfterIdle: .milliseconds(300))
        return try PredictorPool(config: config, logger: Logger(label: "t"), budget: budget)
    }

    @Test("the busy stage grows to the budget, not past it; then the idle stage's extra process goes to the stage that waits")
    func sharedBudget() async throws {
        let budget = ProcessBudget(total: 3)
        let first = try Self.pool("first", budget: budget), second = try Self.pool("second", budget: budget)
        try await first.start()
        try await second.start()
        // Only the first stage is busy: it grows to 2 (3 in the budget, 1 held by the second's minimum).
        let load = Task { for _ in 0..<12 { _ = await first.predict(Fixtures.samples(8)) } }
        try await waitUntil(timeout: .seconds(20)) { await first.state().processes == 2 }
        try await Task.sleep(for: .milliseconds(500))
        let grown = await first.state(), other = await second.state()
        #expect(grown.processes + other.processes <= 3, "the budget holds: \(grown.processes) + \(other.processes)")
        await load.value
        // Now only the second is busy: the first's idle extra process is given up within ~300 ms
        // (not its 60 s idle limit), and the second grows into the freed room.
        let second_load = Task { for _ in 0..<20 { _ = await second.predict(Fixtures.samples(8)) } }
        try await waitUntil(timeout: .seconds(20)) { await second.state().processes == 2 }
        let after = await first.state()
        #expect(after.processes == 1)
        await second_load.value
        await first.shutdown()
        await second.shutdown()
    }
}
