import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

/// Time from a worker's failure to its in-flight shard running again on another worker: from the
/// signal to the `startedAt` of the later attempt's ack (same clock: one machine).
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
        let attempts = Dictionary(victim.inFlight.map { ($0.shard, $0.attempt) }, uniquingKeysWith: max)
        let failedAt = Timestamp.now()
        kill(Int32(victim.pid), signal == "SIGKILL" ? SIGKILL : SIGSTOP)
        defer { if signal == "SIGSTOP" { kill(Int32(victim.pid), SIGCONT) } }

        // Running again = a later attempt of one of its shards started (the new execution's ack says when).
        let acks = try await TopicReader(client: harness.fixture.client, topics: [TopicNames(job: harness.job).acks],
                                         logger: harness.fixture.logger)
        var recoveredAfterMs: Int64?
        let giveUp = ContinuousClock.now + .seconds(30)
        while recoveredAfterMs == nil, ContinuousClock.now < giveUp {
            for message in try await acks.poll() {
                guard let ack = try? RecordCodec.shared.decode(AckRecord.self, from: message.value),
                      let failed = attempts[ack.shard], ack.attempt > failed else { continue }
                recoveredAfterMs = ack.startedAt - failedAt
            }
        }
        await acks.close()
        await heartbeats.close()
        let seconds = recoveredAfterMs.map { Double($0) / 1000 }
        print("recovery after \(signal): \(seconds.map { String(format: "%.2f s", $0) } ?? "none") (workerTimeout 3 s)")
        let measured = try #require(seconds, "the failed worker's shard ran again elsewhere")
        #expect(measured <= 5.0, "within workerTimeout (3 s) + 2 s")
        if signal == "SIGSTOP" { kill(Int32(victim.pid), SIGCONT) }
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 0)
    }
}
