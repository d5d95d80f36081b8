import FlotillaCore
import Logging
import RdKafka

/// The brokers' topics and how many partitions each has.
public struct TopicCatalog: Sendable, Hashable {
    /// Partition count per topic.
    public var partitions: [String: Int32]

    public init(partitions: [String: Int32]) { self.partitions = partitions }

    /// The partition count of `topic`, nil when it does not exist.
    public subscript(topic: String) -> Int32? { partitions[topic] }
}

/// Topic administration: what topics exist, and creating a job's topics.
public final class BrokerAdmin: Sendable {
    public let connection: BrokerConnection
    private let admin: KafkaAdmin

    public init(connection: BrokerConnection, logger: Logger) throws(FlotillaError) {
        self.connection = connection
        do {
            admin = try KafkaAdmin(configuration: connection.client, logger: logger)
        } catch {
            throw BrokerConnection.clientError(error)
        }
    }

    /// The cluster's topics, proving the brokers answer: for a command a person waits on. Fails
    /// within the connection's timeout when they do not, and within about a second when every try
    /// is refused or the host name does not resolve (that is known at once; waiting out the
    /// timeout made a typo cost 10 s). It asks again every half second meanwhile, so the fleet's
    /// processes use `topics()` instead: a hundred workers starting at once would each repeat
    /// their request twice a second to a broker that is slow because they all start.
    public func catalog() async throws(FlotillaError) -> TopicCatalog {
        let timeout = connection.timeout
        let started = ContinuousClock.now
        var hopelessSince: ContinuousClock.Instant?
        while true {
            let left = timeout - (ContinuousClock.now - started)
            do {
                return TopicCatalog(partitions: try await admin.metadata(timeout: max(.milliseconds(50), min(.milliseconds(500), left))).topics)
            } catch {
                let hopeless = error.message.contains("Connection refused") || error.message.contains("resolve")
                hopelessSince = hopeless ? (hopelessSince ?? .now) : nil
                let givingUp = hopelessSince.map { ContinuousClock.now - $0 >= .seconds(1) } ?? false
                guard givingUp || ContinuousClock.now - started >= timeout else { continue }
                let why = error.message.range(of: "(last client error: ").map { String(error.message[$0.upperBound...].dropLast()) }
                throw FlotillaError(
                    .kafka,
                    "cannot reach Kafka at \(connection.bootstrapServers)\(why.map { ": \($0)" } ?? " within \(timeout)"); is the broker running and --brokers right?")
            }
        }
    }

    /// The cluster's topics from one metadata request, which may take the connection's timeout.
    public func topics() async throws(FlotillaError) -> TopicCatalog {
        do {
            return TopicCatalog(partitions: try await admin.metadata().topics)
        } catch {
            throw FlotillaError(.kafka, "cannot read topic metadata from Kafka", underlying: error)
        }
    }

    /// Creates the topics `config` needs (docs/PROTOCOL.md, "Topics"); existing ones are kept as
    /// they are. `includingJobs` creates the shared, compacted `<p>.jobs` too. Returns the
    /// catalog once it lists them all: a broker may answer the creation before its metadata
    /// shows the new topics (seen once on the embedded broker).
    @discardableResult
    public func createTopics(for config: JobConfig, includingJobs: Bool = true) async throws(FlotillaError) -> TopicCatalog {
        let specifications = Self.topicSpecifications(for: config).filter { includingJobs || $0.name != config.topics.jobs }
        do {
            try await admin.createTopics(specifications, ignoreExisting: true, timeout: connection.timeout)
        } catch {
            throw FlotillaError(.kafka, "cannot create the topics of job '\(config.job)'", underlying: error)
        }
        let deadline = ContinuousClock.now + connection.timeout
        while true {
            let catalog = try await topics()
            let missing = specifications.map(\.name).filter { (catalog[$0] ?? 0) == 0 }
            if missing.isEmpty { return catalog }
            guard ContinuousClock.now < deadline else {
                throw FlotillaError(.kafka, "topic(s) \(missing.joined(separator: ", ")) are missing after they were created at \(connection.bootstrapServers)")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// The topics a job needs: `<p>.jobs` compacted with one partition; shards with
    /// `config.shardPartitions`, results with `config.resultPartitions`; the rest with one.
    static func topicSpecifications(for config: JobConfig) -> [TopicSpecification] {
        let topics = config.topics
        // -1 asks the broker for its default replication factor.
        let replication = Int32(config.kafka.replicationFactor ?? -1)
        var specifications = [TopicSpecification(
            name: topics.jobs, partitions: 1, replicationFactor: replication, configs: ["cleanup.policy": "compact"])]
        for topic in topics.perJob {
            let partitions = topics.partitions(of: topic, shardPartitions: config.shardPartitions, resultPartitions: config.resultPartitions)
            specifications.append(TopicSpecification(name: topic, partitions: Int32(partitions), replicationFactor: replication))
        }
        return specifications
    }

    /// The topics of `config` and their partition counts, as `createTopics` makes them.
    public static func plannedTopics(for config: JobConfig) -> [(name: String, partitions: Int32)] {
        topicSpecifications(for: config).map { ($0.name, $0.partitions) }
    }
}

extension BrokerAdmin {
    /// The offset the next record of `partition` will get.
    func highWatermark(_ partition: TopicPartition) async throws(FlotillaError) -> Int64 {
        do {
            return try await admin.watermarks(partition).high
        } catch {
            throw FlotillaError(.kafka, "cannot read the end of \(partition)", underlying: error)
        }
    }
}
