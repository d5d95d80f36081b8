import FlotillaCore
import Logging
import RdKafka

/// Where the brokers are and how to talk to them: what every command, the controller and each
/// worker need before they can read or publish anything. Every Kafka client of Flotilla is made
/// from one of these.
public struct BrokerConnection: Sendable, Hashable {
    /// Bootstrap servers, "host:port[,host:port...]".
    public var bootstrapServers: String
    /// librdkafka properties passed through (security, SASL, TLS), from the spec and the command
    /// line; applied last, so they override Flotilla's own settings.
    public var properties: [String: String]
    /// How long one broker request (metadata, admin, a read to the end of a topic with no
    /// progress) may take before the command fails.
    public var timeout: Duration
    /// Who the clients are in the broker's logs: "flotilla-cli", "flotilla-controller", "flotilla-worker-w3".
    public var clientID: String

    /// The default per-request bound: long enough for a busy broker, short enough that an
    /// unreachable one is reported promptly.
    public static let defaultTimeout: Duration = .seconds(10)

    public init(bootstrapServers: String, properties: [String: String] = [:], timeout: Duration = BrokerConnection.defaultTimeout,
                clientID: String = "flotilla-cli") {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
        self.timeout = timeout
        self.clientID = clientID
    }

    /// This connection with a job's own Kafka properties under the given ones (the given win).
    public func adding(jobProperties: [String: String]) -> BrokerConnection {
        var connection = self
        connection.properties = jobProperties.merging(properties) { _, given in given }
        return connection
    }

    /// The client settings for RdKafka.
    var client: KafkaClientConfiguration {
        var client = KafkaClientConfiguration(bootstrapServers: bootstrapServers, properties: properties)
        client.clientID = clientID
        client.requestTimeout = timeout
        return client
    }

    /// A consumer of these settings, tuned by `adjust`; a client that cannot be made is a
    /// `FlotillaError` (a bad passthrough property is the user's to fix).
    func consumer(groupID: String? = nil, pace: ReadPace, isolation: ReadIsolation, logger: Logger,
                  _ adjust: (inout KafkaConsumerConfiguration) -> Void = { _ in }) throws(FlotillaError) -> KafkaConsumer {
        var configuration = KafkaConsumerConfiguration(client: client, groupID: groupID)
        configuration.fetchWait = pace.fetchWait
        configuration.isolationLevel = isolation.level
        adjust(&configuration)
        do {
            return try KafkaConsumer(configuration: configuration, logger: logger)
        } catch {
            throw Self.clientError(error)
        }
    }

    /// A producer of these settings (idempotent), tuned by `adjust`.
    func producer(logger: Logger, _ adjust: (inout KafkaProducerConfiguration) -> Void = { _ in }) throws(FlotillaError) -> KafkaProducer {
        var configuration = producerConfiguration
        adjust(&configuration)
        do {
            return try KafkaProducer(configuration: configuration, logger: logger)
        } catch {
            throw Self.clientError(error)
        }
    }

    /// The producer settings every Flotilla producer starts from: deliveries given at least
    /// three request timeouts (30 s at least) before they fail.
    var producerConfiguration: KafkaProducerConfiguration {
        var configuration = KafkaProducerConfiguration(client: client)
        configuration.deliveryTimeout = max(timeout * 3, .seconds(30))
        return configuration
    }

    /// A client that cannot even be created: a bad passthrough property is the user's to fix.
    static func clientError(_ error: KafkaError) -> FlotillaError {
        if error.name == "_INVALID_ARG" {
            return FlotillaError(.invalidConfiguration, error.message)
        }
        return FlotillaError(.kafka, "cannot create a Kafka client", underlying: error)
    }

    /// "10s", "1.5s".
    public static func describe(_ duration: Duration) -> String {
        let seconds = duration.seconds
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
