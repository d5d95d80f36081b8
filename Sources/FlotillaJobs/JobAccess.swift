import FlotillaCore
import FlotillaKafka
import Logging

/// What every reader and writer of one job's topics needs: the brokers, the job's topic names,
/// and a logger carrying the job's id.
public struct JobAccess: Sendable {
    public var connection: BrokerConnection
    public var topics: TopicNames
    public var logger: Logger

    public init(connection: BrokerConnection, prefix: String = KafkaConfig.defaultTopicPrefix, job: String, logger: Logger) {
        self.connection = connection
        self.topics = TopicNames(prefix: prefix, job: job)
        var logger = logger
        logger[metadataKey: LoggingKeys.job] = "\(job)"
        self.logger = logger
    }
}

/// A command-side client of one job's topics (status, results, control), made from a `JobAccess`.
public protocol JobClient: Sendable {
    var access: JobAccess { get }
    init(access: JobAccess)
}

extension JobClient {
    /// A client of job `job` under topic prefix `prefix` at `connection`.
    public init(connection: BrokerConnection, prefix: String = KafkaConfig.defaultTopicPrefix, job: String, logger: Logger) {
        self.init(access: JobAccess(connection: connection, prefix: prefix, job: job, logger: logger))
    }

    public var connection: BrokerConnection { access.connection }
    public var topics: TopicNames { access.topics }
    public var logger: Logger { access.logger }
}
