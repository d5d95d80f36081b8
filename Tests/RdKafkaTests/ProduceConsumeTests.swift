import FlotillaTestSupport
import Foundation
import RdKafka
import Testing

@Suite("Produce and consume against the embedded broker", .timeLimit(.minutes(3)))
struct ProduceConsumeTests {
    @Test("10 000 messages: each consumed exactly once, in order per partition")
    func tenThousandExactlyOnceInOrder() async throws {
        let fixture = try await BrokerFixture()
        let topic = try await fixture.makeTopic("order", partitions: 4)
        let producer = try fixture.producer()
        let messages = (0..<10_000).map { i in
            OutgoingMessage(topic: topic, key: "k\(i % 37)", value: Array("message-\(i)".utf8),
                            headers: [KafkaHeader("seq", String(i))])
        }
        let reports = try await producer.send(messages)
        #expect(reports.count == 10_000)

        let consumer = try fixture.consumer(group: "order-\(UUID().uuidString)")
        try consumer.subscribe([topic])
        let received = try await consumer.collect(timeout: .seconds(60)) { $0.count >= 10_000 }
        try await consumer.close()

        #expect(received.count == 10_000)
        let sequences = received.map { Int(String(decoding: $0.header("seq") ?? [], as: UTF8.self))! }
        #expect(Set(sequences).count == 10_000, "every message exactly once")
        for partition in Set(received.map(\.partition)) {
            let inPartition = received.filter { $0.partition == partition }
            #expect(inPartition.map(\.offset) == inPartition.map(\.offset).sorted(), "offsets ascend in \(partition)")
            let seqs = inPartition.map { Int(String(decoding: $0.header("seq")!, as: UTF8.self))! }
            #expect(seqs == seqs.sorted(), "produce order kept in partition \(partition)")
        }
        for message in received {
            let seq = Int(String(decoding: message.header("seq")!, as: UTF8.self))!
            #expect(message.value == Array("message-\(seq)".utf8))
            #expect(message.keyString == "k\(seq % 37)")
        }
    }

    @Test("A group of two splits 8 partitions; a member closing without commit hands its messages over")
    func groupSplitAndHandover() async throws {
        let fixture = try await BrokerFixture()
        let topic = try await fixture.makeTopic("group", partitions: 8)
        let group = "split-\(UUID().uuidString)"
        let producer = try fixture.producer()
        try await producer.send((0..<400).map { OutgoingMessage(topic: topic, partition: Int32($0 % 8), value: Array("m\($0)".utf8)) })

        let first = try fixture.consumer(group: group)
        let second = try fixture.consumer(group: group)
        try first.subscribe([topic])
        try second.subscribe([topic])
        var firstPartitions = Set<Int32>()
        var secondPartitions = Set<Int32>()
        var firstMessages: [KafkaMessage] = []
        var secondMessages: [KafkaMessage] = []
        let deadline = ContinuousClock.now + .seconds(40)
        while ContinuousClock.now < deadline, firstPartitions.count + secondPartitions.count < 8 || firstPartitions.isEmpty || secondPartitions.isEmpty {
            async let a = first.poll(timeout: .milliseconds(100))
            async let b = second.poll(timeout: .milliseconds(100))
            let (eventsA, eventsB) = try await (a, b)
            apply(eventsA, to: &firstPartitions, messages: &firstMessages)
            apply(eventsB, to: &secondPartitions, messages: &secondMessages)
        }
        #expect(firstPartitions.count + secondPartitions.count == 8)
        #expect(!firstPartitions.isEmpty && !secondPartitions.isEmpty, "both members hold partitions")
        #expect(firstPartitions.isDisjoint(with: secondPartitions))

        // The second member commits what it read; the first commits nothing and leaves.
        let secondCommits = latestOffsets(secondMessages)
        try await second.commit(secondCommits)
        try await first.close()

        // The survivor takes over the first member's partitions and reads them from the start.
        var taken = Set<Int32>()
        var handedOver: [KafkaMessage] = []
        let handoverDeadline = ContinuousClock.now + .seconds(40)
        while ContinuousClock.now < handoverDeadline {
            var ignored = Set<Int32>()
            apply(try await second.poll(timeout: .milliseconds(100)), to: &ignored, messages: &handedOver)
            taken.formUnion(ignored)
            let fromFirst = handedOver.filter { firstPartitions.contains($0.partition) }
            if Set(fromFirst.map(\.offset).map { "\($0)" }).count > 0, fromFirst.count >= 50 * firstPartitions.count { break }
        }
        let fromFirst = handedOver.filter { firstPartitions.contains($0.partition) }
        #expect(taken.isSuperset(of: firstPartitions), "the survivor was assigned the departed member's partitions")
        #expect(fromFirst.count == 50 * firstPartitions.count, "every uncommitted message of the departed member is redelivered")
        #expect(Set(fromFirst.map { "\($0.partition):\($0.offset)" }).count == fromFirst.count)
        try await second.close()
    }

    private func apply(_ events: [ConsumerEvent], to partitions: inout Set<Int32>, messages: inout [KafkaMessage]) {
        for event in events {
            switch event {
            case .assigned(let list): partitions.formUnion(list.map(\.partition))
            case .revoked(let list, _): partitions.subtract(list.map(\.partition))
            case .message(let message): messages.append(message)
            default: break
            }
        }
    }

    private func latestOffsets(_ messages: [KafkaMessage]) -> [TopicPartitionOffset] {
        var next: [TopicPartition: Int64] = [:]
        for message in messages { next[message.topicPartition] = max(next[message.topicPartition] ?? 0, message.offset + 1) }
        return next.map { TopicPartitionOffset($0.key.topic, $0.key.partition, $0.value) }
    }
}
