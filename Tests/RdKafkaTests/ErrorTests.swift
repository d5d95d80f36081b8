import FlotillaTestSupport
import Foundation
import Logging
import RdKafka
import Testing

@Suite("Client errors are clear and bounded", .timeLimit(.minutes(1)))
struct ErrorTests {
    let logger = Logger(label: "test")

    @Test("An unknown configuration property fails construction with librdkafka's message")
    func unknownProperty() throws {
        let configuration = KafkaClientConfiguration(bootstrapServers: "127.0.0.1:9092", properties: ["no.such.property": "1"])
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaProducer(configuration: KafkaProducerConfiguration(client: configuration), logger: logger)
        }
        #expect(error?.message.contains("no.such.property") == true)
        #expect(error?.message.contains("No such configuration property") == true)
    }

    @Test("An invalid value of a passthrough property is rejected too")
    func invalidPassthroughValue() throws {
        let configuration = KafkaClientConfiguration(bootstrapServers: "127.0.0.1:9092", properties: ["security.protocol": "carrier-pigeon"])
        let error = #expect(throws: KafkaError.self) {
            _ = try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: configuration, groupID: "g"), logger: logger)
        }
        #expect(error?.message.contains("security.protocol") == true)
    }

    @Test("Security settings pass through to librdkafka")
    func securityPassthrough() throws {
        let configuration = KafkaClientConfiguration(bootstrapServers: "127.0.0.1:9092", properties: [
            "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u", "sasl.password": "p",
        ])
        _ = try KafkaProducer(configuration: KafkaProducerConfiguration(client: configuration), logger: logger)
    }

    @Test("An unreachable broker gives a clear error within the request timeout")
    func unreachableBroker() async throws {
        var configuration = KafkaClientConfiguration(bootstrapServers: "127.0.0.1:1")
        configuration.requestTimeout = .seconds(2)
        let admin = try KafkaAdmin(configuration: configuration, logger: logger)
        let start = ContinuousClock.now
        let error = await #expect(throws: KafkaError.self) { try await admin.metadata() }
        #expect(ContinuousClock.now - start < .seconds(6))
        #expect(error?.message.contains("cannot reach Kafka at 127.0.0.1:1") == true)
    }

    @Test("A produce to an unreachable broker fails after the delivery timeout")
    func unreachableProduce() async throws {
        var configuration = KafkaProducerConfiguration(client: KafkaClientConfiguration(bootstrapServers: "127.0.0.1:1"))
        configuration.deliveryTimeout = .seconds(2)
        let producer = try KafkaProducer(configuration: configuration, logger: logger)
        let start = ContinuousClock.now
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(OutgoingMessage(topic: "nowhere", value: [1, 2, 3]))
        }
        #expect(ContinuousClock.now - start < .seconds(6))
        #expect(error?.name == "_MSG_TIMED_OUT")
    }

    @Test("A record larger than message.max.bytes is refused at once")
    func oversizedRecord() async throws {
        let fixture = try await BrokerFixture()
        let topic = try await fixture.makeTopic("big")
        let producer = try fixture.producer()
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(OutgoingMessage(topic: topic, value: Array(repeating: 0, count: 2_000_000)))
        }
        #expect(error?.name == "MSG_SIZE_TOO_LARGE")
    }
}
