import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

@Suite("Admin against the embedded broker", .timeLimit(.minutes(2)))
struct AdminTests {
    @Test("Create topics, read metadata, watermarks and consumer lag")
    func topicsAndLag() async throws {
        let fixture = try await BrokerFixture()
        let admin = try fixture.admin()
        let name = "admin-\(UUID().uuidString.prefix(8).lowercased())"
        try await admin.createTopics([TopicSpecification(name: name, partitions: 3, configs: ["cleanup.policy": "compact"])])
        try await admin.createTopics([TopicSpecification(name: name, partitions: 3)])  // exists: not an error
        #expect(try await admin.metadata().topics[name] == 3)

        try await fixture.producer().send((0..<9).map { OutgoingMessage(topic: name, partition: Int32($0 % 3), key: "k\($0)", value: [UInt8($0)]) })
        // Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, not the end.
        let high = try await admin.watermarks(TopicPartition(name, 1)).high
        #expect(high >= 1)
        withKnownIssue("Tansu 0.6 reports the last batch's base offset + 1 as the high watermark") { #expect(high == 3) }

        let group = "lag-\(UUID().uuidString)"
        let consumer = try fixture.consumer(group: group)
        try consumer.subscribe([name])
        let read = try await consumer.collect(timeout: .seconds(30)) { $0.count >= 9 }
        let partitionZero = read.filter { $0.partition == 0 }.map(\.offset).max()!
        try await consumer.commit([TopicPartitionOffset(name, 0, partitionZero + 1)])
        try await consumer.close()

        let lag = try await admin.consumerLag(group: group, topic: name, logger: fixture.logger)
        #expect(lag[TopicPartition(name, 0)]?.committed == 3)
        #expect(lag[TopicPartition(name, 1)]?.committed == TopicPartitionOffset.invalid, "nothing committed there")

        // Not deleted here: with Tansu 0.6, deleting a topic made librdkafka 2.8's main thread crash
        // in the metadata cache (strcmp in rd_kafka_metadata_cache_find, seen under gdb) in a later
        // metadata update of a client of the same process. Flotilla itself never deletes topics.
    }
}

@Suite("TopicReader", .timeLimit(.minutes(1)))
struct TopicReaderTests {
    @Test("Reads every partition to its end, including empty partitions")
    func readsToEnd() async throws {
        let fixture = try await BrokerFixture()
        let topic = try await fixture.makeTopic("reader", partitions: 4)
        let empty = try await fixture.makeTopic("empty", partitions: 2)
        try await fixture.producer().send((0..<25).map { OutgoingMessage(topic: topic, partition: Int32($0 % 3), value: [UInt8($0)]) })
        let reader = try await TopicReader(client: fixture.client, topics: [topic, empty], logger: fixture.logger)
        let messages = try await reader.readToEnd(timeout: .seconds(20))
        #expect(messages.count == 25)
        #expect(Set(messages.map(\.value)).count == 25)
        #expect(reader.caughtUp)
        await reader.close()
    }

    @Test("A missing topic is a clear error")
    func missingTopic() async throws {
        let fixture = try await BrokerFixture()
        let error = await #expect(throws: KafkaError.self) {
            _ = try await TopicReader(client: fixture.client, topics: ["no-such-topic"], logger: fixture.logger)
        }
        #expect(error?.message.contains("no-such-topic") == true)
    }
}
