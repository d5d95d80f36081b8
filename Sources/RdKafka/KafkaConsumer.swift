import CRdKafka
import Logging

/// What a consumer poll returns, in order.
public enum ConsumerEvent: Sendable {
    case message(KafkaMessage)
    /// Partitions added to this member (cooperative rebalance: only the new ones).
    case assigned([TopicPartition])
    /// Partitions taken from this member. `lost` means the group moved on without this member
    /// (session timeout): its offsets must not be committed.
    case revoked([TopicPartition], lost: Bool)
    /// The consumer reached the current end of a partition (only with `reportEndOfPartition`).
    case endOfPartition(TopicPartition, offset: Int64)
    /// A non-fatal consumer error (the client keeps retrying); fatal ones are thrown by `poll`.
    case error(KafkaError)
}

/// A Kafka consumer in a group (cooperative-sticky) or a group-less reader of assigned partitions.
/// Offsets are stored and committed by the application only. Polls run on a dedicated queue.
public final class KafkaConsumer: Sendable {
    let client: KafkaClient
    public let configuration: KafkaConsumerConfiguration

    public init(configuration: KafkaConsumerConfiguration, logger: Logger) throws(KafkaError) {
        self.configuration = configuration
        client = try KafkaClient(kind: RD_KAFKA_CONSUMER, properties: configuration.librdkafkaProperties,
                                 bootstrapServers: configuration.client.bootstrapServers, logger: logger) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        }
        rd_kafka_poll_set_consumer(client.handle)
    }

    /// Joins the group and subscribes to `topics`; partitions arrive as `.assigned` events.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        let list = TopicPartitionList(topics.map { TopicPartition($0, -1) })
        try KafkaError.check(rd_kafka_subscribe(client.handle, list.pointer), "subscribe to \(topics.joined(separator: ", "))")
    }

    /// Reads exactly these partitions from these offsets, outside any group rebalancing.
    /// Runs on the client's queue: librdkafka waits for the fetchers to take the new assignment.
    public func assign(_ partitions: [TopicPartitionOffset]) async throws(KafkaError) {
        let client = client
        let err = await client.blocking {
            let list = TopicPartitionList(partitions)
            return rd_kafka_assign(client.handle, list.pointer)
        }
        try KafkaError.check(err, "assign partitions")
    }

    /// Waits up to `timeout` for the first event, then takes up to `maxEvents` that are ready.
    public func poll(maxEvents: Int = 500, timeout: Duration) async throws(KafkaError) -> [ConsumerEvent] {
        let client = client
        let events = await client.blocking {
            var events: [ConsumerEvent] = []
            var next = rd_kafka_consumer_poll(client.handle, KafkaClient.timeoutMs(timeout))
            events += client.context.drainRebalances()
            while let message = next {
                events.append(Self.event(from: message))
                rd_kafka_message_destroy(message)
                if events.count >= maxEvents { break }
                next = rd_kafka_consumer_poll(client.handle, 0)
                events += client.context.drainRebalances()
            }
            return events
        }
        if let fatal = client.fatalError { throw fatal }
        return events
    }

    private static func event(from message: UnsafeMutablePointer<rd_kafka_message_t>) -> ConsumerEvent {
        let m = message.pointee
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
            return .endOfPartition(TopicPartition(topic, m.partition), offset: m.offset)
        }
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .error(KafkaError(m.err, "consume from \(topic.isEmpty ? "Kafka" : topic)"))
        }
        let value = m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) } ?? []
        let key = m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        return .message(KafkaMessage(topic: topic, partition: m.partition, offset: m.offset, key: key, value: value,
                                     headers: headers(of: message),
                                     timestamp: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp))
    }

    private static func headers(of message: UnsafeMutablePointer<rd_kafka_message_t>) -> [KafkaHeader] {
        var headers: OpaquePointer?
        guard rd_kafka_message_headers(message, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR, let headers else { return [] }
        var result: [KafkaHeader] = []
        var name: UnsafePointer<CChar>?
        var value: UnsafeRawPointer?
        var size = 0
        var index = 0
        while rd_kafka_header_get_all(headers, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
            let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? []
            result.append(KafkaHeader(name.map { String(cString: $0) } ?? "", bytes))
            index += 1
        }
        return result
    }

    /// Stores offsets (the next offset to read) for the next commit; only assigned partitions.
    public func storeOffsets(_ offsets: [TopicPartitionOffset]) throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        let list = TopicPartitionList(offsets)
        try KafkaError.check(rd_kafka_offsets_store(client.handle, list.pointer), "store offsets")
        _ = try TopicPartitionList.read(list.pointer)
    }

    /// Commits `offsets` (the next offset to read), or the stored offsets when nil, and waits.
    public func commit(_ offsets: [TopicPartitionOffset]? = nil) async throws(KafkaError) {
        let client = client
        let err = await client.blocking {
            guard let offsets else { return rd_kafka_commit(client.handle, nil, 0) }
            let list = TopicPartitionList(offsets)
            return rd_kafka_commit(client.handle, list.pointer, 0)
        }
        if err == RD_KAFKA_RESP_ERR__NO_OFFSET { return }  // nothing stored: nothing to do
        try KafkaError.check(err, "commit offsets")
    }

    /// The group's committed offsets for these partitions (`TopicPartitionOffset.invalid` if none).
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws(KafkaError) -> [TopicPartitionOffset] {
        let client = client
        let result: Result<[TopicPartitionOffset], KafkaError> = await client.blocking {
            let list = TopicPartitionList(partitions)
            let err = rd_kafka_committed(client.handle, list.pointer, KafkaClient.timeoutMs(timeout))
            return Result { () throws(KafkaError) in
                try KafkaError.check(err, "read committed offsets")
                return try TopicPartitionList.read(list.pointer)
            }
        }
        return try result.get()
    }

    /// The partitions currently assigned to this member.
    public func assignment() throws(KafkaError) -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        try KafkaError.check(rd_kafka_assignment(client.handle, &list), "read assignment")
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        return try TopicPartitionList.read(list).map(\.topicPartition)
    }

    /// Stops fetching from these partitions (back-pressure) until `resume`. librdkafka waits for
    /// each partition's fetcher to acknowledge, so this runs on the client's queue, off the pool.
    public func pause(_ partitions: [TopicPartition]) async throws(KafkaError) {
        try await pauseOrResume(partitions, pause: true)
    }

    public func resume(_ partitions: [TopicPartition]) async throws(KafkaError) {
        try await pauseOrResume(partitions, pause: false)
    }

    private func pauseOrResume(_ partitions: [TopicPartition], pause: Bool) async throws(KafkaError) {
        guard !partitions.isEmpty else { return }
        let client = client
        let err = await client.blocking {
            let list = TopicPartitionList(partitions)
            return pause ? rd_kafka_pause_partitions(client.handle, list.pointer) : rd_kafka_resume_partitions(client.handle, list.pointer)
        }
        try KafkaError.check(err, pause ? "pause partitions" : "resume partitions")
    }

    /// Group metadata for `KafkaProducer.sendOffsetsToTransaction`.
    public func groupMetadata() throws(KafkaError) -> ConsumerGroupMetadata {
        guard let pointer = rd_kafka_consumer_group_metadata(client.handle) else {
            throw KafkaError.invalid("consumer has no group metadata (no group.id)")
        }
        return ConsumerGroupMetadata(pointer)
    }

    /// Leaves the group cleanly (revoking partitions without committing) and stops fetching.
    /// Loads the metadata of `topics` into this consumer's cache before assigning their partitions
    /// (see `KafkaClient.loadMetadata`).
    public func loadMetadata(for topics: [String], timeout: Duration = .seconds(5)) async {
        await client.loadMetadata(for: topics, timeout: timeout)
    }

    /// Makes a `poll` blocked on another thread return now (or the next one, when none is
    /// blocked), so callers can poll with long timeouts and still stop at once.
    public func interruptPoll() {
        guard let queue = rd_kafka_queue_get_consumer(client.handle) else { return }
        rd_kafka_queue_yield(queue)
        rd_kafka_queue_destroy(queue)
    }

    public func close() async throws(KafkaError) {
        let client = client
        let err = await client.blocking { rd_kafka_consumer_close(client.handle) }
        try KafkaError.check(err, "close consumer")
    }
}

private func rebalanceCallback(_ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
                               _ partitions: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let rk, let opaque else { return }
    let context = Unmanaged<ClientContext>.fromOpaque(opaque).takeUnretainedValue()
    let list = (try? TopicPartitionList.read(partitions))?.map(\.topicPartition) ?? []
    let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
    // The assignment must change inside the callback, or the rebalance never completes.
    switch err {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        let error = cooperative ? rd_kafka_incremental_assign(rk, partitions) : nil
        if !cooperative { rd_kafka_assign(rk, partitions) }
        if let error { context.recordRebalance(.error(KafkaError(consuming: error, "assign partitions"))) }
        context.recordRebalance(.assigned(list))
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        let lost = rd_kafka_assignment_lost(rk) != 0
        let error = cooperative ? rd_kafka_incremental_unassign(rk, partitions) : nil
        if !cooperative { rd_kafka_assign(rk, nil) }
        if let error { context.recordRebalance(.error(KafkaError(consuming: error, "revoke partitions"))) }
        context.recordRebalance(.revoked(list, lost: lost))
    default:
        rd_kafka_assign(rk, nil)
        context.recordRebalance(.error(KafkaError(err, "rebalance failed")))
    }
    // Return from the poll that served this callback now: the caller learns of the change at
    // once rather than when its poll times out.
    rd_kafka_yield(rk)
}
