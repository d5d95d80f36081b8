import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

/// Time from a worker's failure to its in-flight shard running again on another worker, measured
/// from the heartbeats topic (a shard is running when a heartbeat lists it in `inFlight`).
@Suite("Recovery time", .serialized, .timeLimit(.minutes(3)))
struct RecoveryTimeTests {
    static let slow = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '0.2']"

    @Test("kill -9 and SIGSTOP of a worker: its shard runs elsewhere within workerTimeout + 2 s", arguments: ["SIGKILL", "SIGSTOP"])
    func recovery(signal: String) async throws {
        let harness = try await FleetHarness(samples: 1200, samplesPerShard: 40, stage: Self.slow)
        try harness.submit()
        try harness.startController(workers: 2)
        let heartbeats = try await TopicReader(client: harness.fixture.client, topics: [TopicNames(job: harness.job).heartbeats],
                                               logger: harness.fixture.logger)
        // Wait until both workers run shards, then fail the one whose pid a heartbeat names.
        var latest: [String: HeartbeatRecord] = [:]
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline, latest.values.filter({ !$0.inFlight.isEmpty }).count < 2 {
            for message in try await heartbeats.poll() {
                if let beat = try? RecordCodec.shared.decode(HeartbeatRecord.self, from: message.value) { latest[beat.worker] = beat }
            }
        }
        let victim = try #require(latest.values.first { !$0.inFlight.isEmpty })
        let shards = Set(victim.inFlight.map(\.shard))
        let failedAt = ContinuousClock.now
        kill(Int32(victim.pid), signal == "SIGKILL" ? SIGKILL : SIGSTOP)
        defer { if signal == "SIGSTOP" { kill(Int32(victim.pid), SIGCONT) } }

        var recoveredAfter: Duration?
        while recoveredAfter == nil, ContinuousClock.now - failedAt < .seconds(20) {
            for message in try await heartbeats.poll() {
                guard let beat = try? RecordCodec.shared.decode(HeartbeatRecord.self, from: message.value),
                      beat.pid != victim.pid, beat.time > Timestamp.now() - 5_000 else { continue }
                if beat.inFlight.contains(where: { shards.contains($0.shard) }) {
                    recoveredAfter = ContinuousClock.now - failedAt
                }
            }
        }
        await heartbeats.close()
        let seconds = recoveredAfter.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        print("recovery after \(signal): \(seconds.map { String(format: "%.2f s", $0) } ?? "none") (workerTimeout 3 s)")
        let measured = try #require(seconds, "the failed worker's shard ran again elsewhere")
        #expect(measured <= 5.0, "within workerTimeout (3 s) + 2 s")
        if signal == "SIGSTOP" { kill(Int32(victim.pid), SIGCONT) }
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 0)
    }
}
