import FlotillaCore
import Foundation
import Testing

/// The short variant of `tools/bench/scale`: a fleet of ten workers on tiny shards, no faults.
/// Before the ledger counted committed shards and consumer positions, this fell into a
/// re-enqueue storm (23 620 re-enqueues for 2 000 shards at 5 workers).
@Suite("Fleet at scale", .serialized, .timeLimit(.minutes(10)))
struct FleetScaleTests {
    @Test("10 workers × 2 000 shards of 10 samples (identity): the job finishes, ≤ 1 % re-enqueued, ≤ 1 % run twice, exactly once")
    func tenWorkersTinyShards() async throws {
        let harness = try await FleetHarness(samples: 20_000, samplesPerShard: 10, stage: "builtin: identity", maxWorkers: 10)
        try harness.submit()
        try harness.startController(workers: 10)
        #expect(try await harness.waitForController(timeout: .seconds(400)) == 0)
        let summary = try #require(harness.summary())
        let reEnqueued = try #require(summary["reEnqueued"] as? Int)
        let duplicates = try #require(summary["duplicates"] as? Int)
        #expect(summary["done"] as? Int == 2_000)
        #expect(reEnqueued <= 20, "re-enqueued \(reEnqueued) of 2 000 shards")
        #expect(duplicates <= 20, "\(duplicates) shards ran twice")
        let (lines, status) = try harness.results()
        #expect(status == 0)
        #expect(lines.count == 20_000)
        #expect(Set(lines.compactMap { $0["id"] as? String }) == Set(harness.samples))
    }
}
