import EmbeddedBroker
import FlotillaCore
import Foundation
import Logging
import RdKafka

/// A real embedded broker on a free port for one test suite, stopped when the suite lets go of it.
///
/// Tests never depend on a broker someone else started.
public final class BrokerFixture: Sendable {
    public let broker: EmbeddedBroker
    public var bootstrapServers: String { broker.bootstrapServers }
    public let logger: Logger

    public init() async throws {
        var logger = Logger(label: "flotilla.test")
        logger.logLevel = ProcessInfo.processInfo.environment["FLOTILLA_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .error
        self.logger = logger
        let logFile = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-test-broker-\(getpid())-\(UUID().uuidString.prefix(8)).log").path
        // The test bundle may run from any folder: also look beside this source file's repository.
        let executable = try BrokerLocator.locate(extraFolders: [URL(fileURLWithPath: #filePath).deletingLastPathComponent().path])
        broker = try await EmbeddedBroker(executable: executable, logFile: logFile)
    }

    /// Client settings for this broker.
    public var client: KafkaClientConfiguration {
        var configuration = KafkaClientConfiguration(bootstrapServers: bootstrapServers)
        configuration.requestTimeout = .seconds(10)
        return configuration
    }

    public func admin() throws -> KafkaAdmin { try KafkaAdmin(configuration: client, logger: logger) }

    public func producer(transactionalID: String? = nil) throws -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(client: client)
        configuration.transactionalID = transactionalID
        return try KafkaProducer(configuration: configuration, logger: logger)
    }

    public func consumer(group: String?, isolation: KafkaConsumerConfiguration.IsolationLevel = .readCommitted,
                         reportEndOfPartition: Bool = false) throws -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(client: client, groupID: group)
        configuration.isolationLevel = isolation
        configuration.reportEndOfPartition = reportEndOfPartition
        return try KafkaConsumer(configuration: configuration, logger: logger)
    }

    /// Creates a topic with a unique name and returns the name.
    public func makeTopic(_ prefix: String = "t", partitions: Int32 = 1) async throws -> String {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        try await admin().createTopics([TopicSpecification(name: name, partitions: partitions)])
        return name
    }
}

extension KafkaConsumer {
    /// Polls until `stop` says enough or `timeout` passes, collecting messages.
    public func collect(timeout: Duration, until stop: ([KafkaMessage]) -> Bool) async throws -> [KafkaMessage] {
        var messages: [KafkaMessage] = []
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !stop(messages) {
            for event in try await poll(timeout: .milliseconds(100)) {
                if case .message(let message) = event { messages.append(message) }
            }
        }
        return messages
    }
}
