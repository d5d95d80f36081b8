import CRdKafka
import Logging

/// A topic to create.
public struct TopicSpecification: Sendable, Hashable {
    public var name: String
    public var partitions: Int32
    public var replicationFactor: Int32
    /// Topic configs, e.g. `cleanup.policy: compact`.
    public var configs: [String: String]

    public init(name: String, partitions: Int32, replicationFactor: Int32 = 1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// What the cluster says about itself.
public struct ClusterMetadata: Sendable, Hashable {
    public var brokers: [String]
    /// Partition count per topic.
    public var topics: [String: Int32]
}

/// Low and high watermarks of a partition: `high` is the offset the next record will get.
public struct Watermarks: Sendable, Hashable {
    public var low: Int64
    public var high: Int64
}

/// Topic administration and cluster queries. Every call is bounded by a timeout.
public final class KafkaAdmin: Sendable {
    let client: KafkaClient
    private let poller: PollThread
    public let configuration: KafkaClientConfiguration

    public init(configuration: KafkaClientConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        let properties = configuration.librdkafkaProperties + configuration.properties.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        client = try KafkaClient(kind: RD_KAFKA_PRODUCER, properties: properties,
                                 bootstrapServers: configuration.bootstrapServers, logger: logger)
        poller = PollThread(client: client)
    }

    deinit { poller.stop() }

    /// Brokers and topics; fails within `timeout` with the connection error when no broker answers.
    public func metadata(timeout: Duration? = nil) async throws(KafkaError) -> ClusterMetadata {
        let client = client
        let timeout = timeout ?? configuration.requestTimeout
        let result: Result<ClusterMetadata, KafkaError> = await client.blocking {
            var metadata: UnsafePointer<rd_kafka_metadata>?
            let err = rd_kafka_metadata(client.handle, 1, nil, &metadata, KafkaClient.timeoutMs(timeout))
            guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
                return .failure(client.explain(KafkaError(err, "cannot reach Kafka at \(client.bootstrapServers) within \(timeout)")))
            }
            defer { rd_kafka_metadata_destroy(metadata) }
            let m = metadata.pointee
            let brokers = (0..<Int(m.broker_cnt)).map { i in
                "\(String(cString: m.brokers[i].host)):\(m.brokers[i].port)"
            }
            var topics: [String: Int32] = [:]
            for i in 0..<Int(m.topic_cnt) where m.topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR {
                topics[String(cString: m.topics[i].topic)] = m.topics[i].partition_cnt
            }
            return .success(ClusterMetadata(brokers: brokers, topics: topics))
        }
        return try result.get()
    }

    /// Creates topics; with `ignoreExisting`, a topic that already exists is not an error.
    public func createTopics(_ topics: [TopicSpecification], ignoreExisting: Bool = true,
                             timeout: Duration? = nil) async throws(KafkaError) {
        guard !topics.isEmpty else { return }
        let timeout = timeout ?? configuration.requestTimeout
        var newTopics: [OpaquePointer?] = []
        defer { newTopics.forEach { rd_kafka_NewTopic_destroy($0) } }
        for topic in topics {
            var errstr = [CChar](repeating: 0, count: 512)
            guard let newTopic = rd_kafka_NewTopic_new(topic.name, topic.partitions, topic.replicationFactor, &errstr, errstr.count) else {
                throw KafkaError.invalid("topic \(topic.name): \(errorText(errstr))")
            }
            newTopics.append(newTopic)
            for (name, value) in topic.configs.sorted(by: { $0.key < $1.key }) {
                try KafkaError.check(rd_kafka_NewTopic_set_config(newTopic, name, value), "topic \(topic.name) config \(name)")
            }
        }
        let pointers = newTopics.map(UncheckedPointer.init)
        try await adminRequest("create topics", timeout: timeout, ignoring: ignoreExisting ? RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS : nil) { handle, options, queue in
            var array = pointers.map(\.pointer)
            rd_kafka_CreateTopics(handle, &array, array.count, options, queue)
        } results: { event in
            var count = 0
            let results = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event), &count)
            return (0..<count).map { results![$0] }
        }
    }

    /// Deletes topics; a topic that does not exist is not an error.
    public func deleteTopics(_ names: [String], timeout: Duration? = nil) async throws(KafkaError) {
        guard !names.isEmpty else { return }
        let timeout = timeout ?? configuration.requestTimeout
        let pointers = names.map { UncheckedPointer(rd_kafka_DeleteTopic_new($0)) }
        defer { pointers.forEach { rd_kafka_DeleteTopic_destroy($0.pointer) } }
        try await adminRequest("delete topics", timeout: timeout, ignoring: RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) { handle, options, queue in
            var array = pointers.map(\.pointer)
            rd_kafka_DeleteTopics(handle, &array, array.count, options, queue)
        } results: { event in
            var count = 0
            let results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event), &count)
            return (0..<count).map { results![$0] }
        }
    }

    /// Runs one admin request on the blocking queue and checks each topic's result.
    private func adminRequest(_ what: String, timeout: Duration, ignoring ignored: rd_kafka_resp_err_t?,
                              start: @escaping @Sendable (OpaquePointer, OpaquePointer?, OpaquePointer) -> Void,
                              results: @escaping @Sendable (OpaquePointer) -> [OpaquePointer?]) async throws(KafkaError) {
        let client = client
        let outcome: Result<Void, KafkaError> = await client.blocking {
            let queue = rd_kafka_queue_new(client.handle)!
            defer { rd_kafka_queue_destroy(queue) }
            let options = rd_kafka_AdminOptions_new(client.handle, RD_KAFKA_ADMIN_OP_ANY)
            defer { rd_kafka_AdminOptions_destroy(options) }
            var errstr = [CChar](repeating: 0, count: 512)
            rd_kafka_AdminOptions_set_request_timeout(options, KafkaClient.timeoutMs(timeout), &errstr, errstr.count)
            start(client.handle, options, queue)
            guard let event = rd_kafka_queue_poll(queue, KafkaClient.timeoutMs(timeout) + 1000) else {
                return .failure(client.explain(KafkaError(RD_KAFKA_RESP_ERR__TIMED_OUT, "\(what) at \(client.bootstrapServers)")))
            }
            defer { rd_kafka_event_destroy(event) }
            let err = rd_kafka_event_error(event)
            if err != RD_KAFKA_RESP_ERR_NO_ERROR {
                return .failure(client.explain(KafkaError(err, "\(what) at \(client.bootstrapServers)")))
            }
            for result in results(event) {
                let topicErr = rd_kafka_topic_result_error(result)
                if topicErr == RD_KAFKA_RESP_ERR_NO_ERROR || topicErr == ignored { continue }
                let name = String(cString: rd_kafka_topic_result_name(result))
                let message = rd_kafka_topic_result_error_string(result).map { String(cString: $0) } ?? ""
                var error = KafkaError(topicErr, "\(what): topic \(name)")
                if !message.isEmpty { error.message += " (\(message))" }
                return .failure(error)
            }
            return .success(())
        }
        try outcome.get()
    }

    /// Low and high watermarks of one partition, asked of the broker.
    public func watermarks(_ partition: TopicPartition, timeout: Duration? = nil) async throws(KafkaError) -> Watermarks {
        let client = client
        let timeout = timeout ?? configuration.requestTimeout
        let result: Result<Watermarks, KafkaError> = await client.blocking {
            var low: Int64 = 0
            var high: Int64 = 0
            let err = rd_kafka_query_watermark_offsets(client.handle, partition.topic, partition.partition, &low, &high, KafkaClient.timeoutMs(timeout))
            if err != RD_KAFKA_RESP_ERR_NO_ERROR { return .failure(client.explain(KafkaError(err, "watermarks of \(partition)"))) }
            return .success(Watermarks(low: low, high: high))
        }
        return try result.get()
    }

    /// Committed offsets of `group` and the high watermark for every partition of `topic`:
    /// the group's lag per partition is `high - committed` (all of `high` when nothing is committed).
    public func consumerLag(group: String, topic: String, logger: Logger) async throws(KafkaError) -> [TopicPartition: (committed: Int64, high: Int64)] {
        guard let count = try await metadata().topics[topic] else {
            throw KafkaError(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, "topic \(topic)")
        }
        let partitions = (0..<count).map { TopicPartition(topic, $0) }
        let reader = try KafkaConsumer(configuration: KafkaConsumerConfiguration(client: configuration, groupID: group), logger: logger)
        let committed = try await reader.committed(partitions)
        var lag: [TopicPartition: (committed: Int64, high: Int64)] = [:]
        for offset in committed {
            lag[offset.topicPartition] = (offset.offset, try await watermarks(offset.topicPartition).high)
        }
        return lag
    }
}
