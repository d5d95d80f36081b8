import FlotillaCore
import Logging
import RdKafka

/// Where the brokers are and how to talk to them: what every job command needs before it can
/// read or publish anything.
public struct BrokerConnection: Sendable, Hashable {
    /// Bootstrap servers, "host:port[,host:port...]".
    public var bootstrapServers: String
    /// librdkafka properties passed through (security, SASL, TLS), from the spec and the command line.
    public var properties: [String: String]
    /// How long one broker request (metadata, admin, a read to the end of a topic with no
    /// progress) may take before the command fails.
    public var timeout: Duration

    /// The default per-request bound: long enough for a busy broker, short enough that an
    /// unreachable one is reported promptly.
    public static let defaultTimeout: Duration = .seconds(10)

    public init(bootstrapServers: String, properties: [String: String] = [:], timeout: Duration = BrokerConnection.defaultTimeout) {
        self.bootstrapServers = bootstrapServers
        self.properties = properties
        self.timeout = timeout
    }

    /// The client settings for RdKafka.
    public var client: KafkaClientConfiguration {
        var client = KafkaClientConfiguration(bootstrapServers: bootstrapServers, properties: properties)
        client.clientID = "flotilla-cli"
        client.requestTimeout = timeout
        return client
    }

    /// An admin client, with Kafka errors turned into `FlotillaError`s.
    func admin(logger: Logger) throws(FlotillaError) -> KafkaAdmin {
        do {
            return try KafkaAdmin(configuration: client, logger: logger)
        } catch {
            throw Self.clientError(error)
        }
    }

    /// An idempotent producer for records of at most `maxMessageBytes`.
    func producer(maxMessageBytes: Int, logger: Logger) throws(FlotillaError) -> KafkaProducer {
        var configuration = KafkaProducerConfiguration(client: client)
        configuration.maxMessageBytes = maxMessageBytes
        configuration.deliveryTimeout = max(timeout * 3, .seconds(30))
        do {
            return try KafkaProducer(configuration: configuration, logger: logger)
        } catch {
            throw Self.clientError(error)
        }
    }

    /// The cluster's metadata, proving the brokers answer; fails within `timeout` when they do not.
    func metadata(_ admin: KafkaAdmin) async throws(FlotillaError) -> ClusterMetadata {
        do {
            return try await admin.metadata(timeout: timeout)
        } catch {
            throw FlotillaError(
                .kafka,
                "\(error.message); is the broker running and --brokers right?")
        }
    }

    /// A client that cannot even be created: a bad passthrough property is the user's to fix.
    static func clientError(_ error: KafkaError) -> FlotillaError {
        if error.name == "_INVALID_ARG" {
            return FlotillaError(.invalidConfiguration, error.message)
        }
        return FlotillaError(.kafka, "cannot create a Kafka client", underlying: error)
    }

    /// "10s", "1.5s".
    static func describe(_ duration: Duration) -> String {
        let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
