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

    /// The cluster's metadata, proving the brokers answer; fails within `timeout` when they do not,
    /// and within about a second when every try is refused or the host name does not resolve (that
    /// is known at once; waiting out the timeout only made a typo cost 10 s).
    func metadata(_ admin: KafkaAdmin) async throws(FlotillaError) -> ClusterMetadata {
        let started = ContinuousClock.now
        var hopelessSince: ContinuousClock.Instant?
        while true {
            let left = timeout - (ContinuousClock.now - started)
            do {
                return try await admin.metadata(timeout: max(.milliseconds(50), min(.milliseconds(500), left)))
            } catch {
                let hopeless = error.message.contains("Connection refused") || error.message.contains("resolve")
                hopelessSince = hopeless ? (hopelessSince ?? .now) : nil
                let givingUp = hopelessSince.map { ContinuousClock.now - $0 >= .seconds(1) } ?? false
                guard givingUp || ContinuousClock.now - started >= timeout else { continue }
                let why = error.message.range(of: "(last client error: ").map { String(error.message[$0.upperBound...].dropLast()) }
                throw FlotillaError(
                    .kafka,
                    "cannot reach Kafka at \(bootstrapServers)\(why.map { ": \($0)" } ?? " within \(timeout)"); is the broker running and --brokers right?")
            }
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
        let seconds = duration.seconds
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
