import CRdKafka

/// Owns an `rd_kafka_topic_partition_list_t` for the duration of one call.
final class TopicPartitionList {
    let pointer: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(_ offsets: [TopicPartitionOffset]) {
        pointer = rd_kafka_topic_partition_list_new(Int32(max(offsets.count, 1)))
        for item in offsets {
            rd_kafka_topic_partition_list_add(pointer, item.topic, item.partition).pointee.offset = item.offset
        }
    }

    convenience init(_ partitions: [TopicPartition]) {
        self.init(partitions.map { TopicPartitionOffset($0.topic, $0.partition, TopicPartitionOffset.invalid) })
    }

    deinit { rd_kafka_topic_partition_list_destroy(pointer) }

    /// Reads a C list into Swift values, raising the first per-partition error.
    static func read(_ list: UnsafePointer<rd_kafka_topic_partition_list_t>?) throws(KafkaError) -> [TopicPartitionOffset] {
        guard let list else { return [] }
        var result: [TopicPartitionOffset] = []
        for index in 0..<Int(list.pointee.cnt) {
            let element = list.pointee.elems[index]
            let topic = String(cString: element.topic)
            try KafkaError.check(element.err, "\(topic)[\(element.partition)]")
            result.append(TopicPartitionOffset(topic, element.partition, element.offset))
        }
        return result
    }
}

/// A consumer's group metadata (group, generation, member), for `sendOffsetsToTransaction`.
///
/// `@unchecked Sendable`: the C object is immutable after creation and freed once, in `deinit`.
public final class ConsumerGroupMetadata: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { rd_kafka_consumer_group_metadata_destroy(pointer) }
}
