import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

@Suite("Transactions against the embedded broker", .timeLimit(.minutes(3)))
struct TransactionTests {
    @Test("Committed transaction visible to read_committed, aborted not; its offsets become the group's")
    func commitAndAbort() async throws {
        let fixture = try await BrokerFixture()
        let input = try await fixture.makeTopic("in", partitions: 1)
        let output = try await fixture.makeTopic("out", partitions: 1)
        let group = "txn-\(UUID().uuidString)"

        // Input records for a consume-transform-produce step.
        try await fixture.producer().send((0..<10).map { OutgoingMessage(topic: input, value: Array("in-\($0)".utf8)) })
        let consumer = try fixture.consumer(group: group)
        try consumer.subscribe([input])
        let inputs = try await consumer.collect(timeout: .seconds(30)) { $0.count >= 10 }
        #expect(inputs.count == 10)

        let producer = try fixture.producer(transactionalID: "txn-test-\(UUID().uuidString)")
        try await producer.initTransactions()

        // Transaction 1: committed, with the consumer's offsets.
        try producer.beginTransaction()
        try await producer.send((0..<5).map { OutgoingMessage(topic: output, value: Array("committed-\($0)".utf8)) })
        try await producer.sendOffsetsToTransaction([TopicPartitionOffset(input, 0, 7)], groupMetadata: consumer.groupMetadata())
        try await producer.commitTransaction()

        // Transaction 2: aborted.
        try producer.beginTransaction()
        try await producer.send((0..<5).map { OutgoingMessage(topic: output, value: Array("aborted-\($0)".utf8)) })
        try await producer.abortTransaction()

        // Transaction 3: committed, so the reader sees past the aborted batch.
        try producer.beginTransaction()
        try await producer.send(OutgoingMessage(topic: output, value: Array("committed-last".utf8)))
        try await producer.commitTransaction()

        let reader = try fixture.consumer(group: nil, isolation: .readCommitted)
        try await reader.assign([TopicPartitionOffset(output, 0, TopicPartitionOffset.beginning)])
        let seen = try await reader.collect(timeout: .seconds(15)) { messages in
            messages.contains { $0.value == Array("committed-last".utf8) }
        }.map { String(decoding: $0.value, as: UTF8.self) }
        #expect(seen.filter { $0.hasPrefix("committed") } == (0..<5).map { "committed-\($0)" } + ["committed-last"])
        // Tansu 0.6 keeps no aborted-transaction index, so read_committed readers still see aborted
        // records. Flotilla does not rely on it: the ack ledger's reader rule ignores them (docs/PROTOCOL.md).
        withKnownIssue("Tansu 0.6 does not hide aborted transactions from read_committed readers") {
            #expect(!seen.contains { $0.hasPrefix("aborted") })
        }

        let committed = try await consumer.committed([TopicPartition(input, 0)])
        #expect(committed.first?.offset == 7, "offsets sent in the committed transaction are the group's")
        try await consumer.close()
    }
}

@Suite("An open transaction and the last stable offset", .timeLimit(.minutes(3)))
struct OpenTransactionTests {
    /// The values a read_committed reader of `topic` reads to its end (its last stable offset).
    static func committedRecords(_ fixture: BrokerFixture, topic: String) async throws -> [String] {
        let reader = try await TopicReader(client: fixture.client, topics: [topic], logger: fixture.logger)
        let messages = try await reader.readToEnd(timeout: .seconds(10))
        await reader.close()
        return messages.map { String(decoding: $0.value, as: UTF8.self) }
    }

    // A transaction left open holds the partition's last stable offset: read_committed readers
    // stop there. A new producer with the same transactional id must end it (Kafka aborts it on
    // InitProducerId), or the partition stays blocked until the broker's transaction timeout.
    @Test("An open transaction blocks read_committed readers until a producer with its transactional id starts again")
    func reinitEndsOpenTransaction() async throws {
        let fixture = try await BrokerFixture()
        let topic = try await fixture.makeTopic("lso", partitions: 1)
        let id = "open-\(UUID().uuidString.prefix(8))"
        let stuck = try fixture.producer(transactionalID: id)
        try await stuck.initTransactions()
        try stuck.beginTransaction()
        try await stuck.send(OutgoingMessage(topic: topic, value: Array("open".utf8)))
        try await fixture.producer().send(OutgoingMessage(topic: topic, value: Array("after".utf8)))
        let blocked = try await Self.committedRecords(fixture, topic: topic)
        #expect(!blocked.contains("after"), "the open transaction holds the last stable offset: \(blocked)")

        let successor = try fixture.producer(transactionalID: id)
        try await successor.initTransactions()
        try await Task.sleep(for: .seconds(1))
        let released = try await Self.committedRecords(fixture, topic: topic)
        #expect(released.contains("after"), "the successor ended the open transaction: \(released)")
    }
}
