import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

/// A transaction that never ends on the acks topic (Tansu left one open at 10 workers): the
/// controller finds the worker that holds it and names it; a successor with the same
/// transactional id ends it and the job completes.
@Suite("A transaction holding the acks topic", .serialized, .timeLimit(.minutes(4)))
struct HeldAcksTests {
    @Test("The controller names the worker whose open transaction holds the acks topic; its successor ends it and the job completes")
    func heldAcks() async throws {
        let harness = try await FleetHarness(samples: 300, samplesPerShard: 50, stage: FaultSuiteTests.sleepy)
        try harness.submit()
        // The holder: a worker's producer that opened a transaction, wrote its ack, and never ended it.
        let transactionalID = "\(KafkaConfig.defaultTopicPrefix).\(harness.job).held"
        let holder = try harness.fixture.producer(transactionalID: transactionalID)
        try await holder.initTransactions()
        try holder.beginTransaction()
        let ack = AckRecord(job: harness.job, shard: ShardRecord.shardID(index: 0), attempt: 0, run: "held-run", worker: "held",
                            samples: 50, errorSamples: 0, status: .failed, error: "never committed", startedAt: Timestamp.now())
        try await holder.send(OutgoingMessage(topic: TopicNames(job: harness.job).acks, key: ack.shard, value: RecordCodec.shared.encode(ack),
                                              headers: [KafkaHeader(RecordHeaders.type, AckRecord.recordType)]))

        try harness.startController(workers: nil, extra: ["--backend", "external"])
        _ = try harness.startWorker(id: "w1")
        // Every shard gets done and reported committed, but no committed read gets past the held ack.
        let named = ContinuousClock.now + .seconds(90)
        while !harness.controllerErrors(start: 1).contains("transaction of worker held holds the acks topic"), ContinuousClock.now < named {
            #expect(harness.controller?.isRunning == true, "the job cannot end while its acks are unreadable")
            try await Task.sleep(for: .seconds(1))
        }
        let errors = harness.controllerErrors(start: 1)
        #expect(errors.contains("restart that worker with the same --worker-id"), "the controller reports the held acks topic and what to do")
        #expect(errors.contains("transaction of worker held holds the acks topic"), "and names the worker that holds it")

        // The operator restarts that worker: its producer starts with the same transactional id.
        let successor = try harness.fixture.producer(transactionalID: transactionalID)
        try await successor.initTransactions()
        #expect(try await harness.waitForController(timeout: .seconds(60)) == 0)
        try await FaultSuiteTests().expectExactlyOnce(harness)
    }
}
