import FlotillaKafka

/// Which shard records of each partition are finished, so that only the contiguous prefix of
/// finished records is ever committed: a crash can then redo work but never skip it.
struct OffsetTracker: Sendable {
    private var received: [TopicPartition: [Int64: Bool]] = [:]

    /// A record was taken from `partition` at `offset`, not yet finished.
    mutating func received(_ partition: TopicPartition, _ offset: Int64) {
        received[partition, default: [:]][offset] = false
    }

    /// The record at `offset` is finished (results committed, skipped, dead-lettered or superseded).
    mutating func finished(_ partition: TopicPartition, _ offset: Int64) {
        if received[partition]?[offset] != nil { received[partition]![offset] = true }
    }

    /// Forgets partitions this worker no longer owns; nothing of theirs may be committed.
    mutating func remove(_ partitions: [TopicPartition]) {
        for partition in partitions { received[partition] = nil }
    }

    /// The offsets to commit (the next offset to read) per partition, treating `extra` as finished;
    /// drops the committed prefix from memory when `advance` is true.
    mutating func commitOffsets(assumingFinished extra: [(TopicPartition, Int64)] = [], advance: Bool) -> [TopicPartitionOffset] {
        var result: [TopicPartitionOffset] = []
        for (partition, offsets) in received {
            var done = offsets
            for (p, offset) in extra where p == partition && done[offset] != nil { done[offset] = true }
            let sorted = done.keys.sorted()
            var next: Int64?
            var prefix: [Int64] = []
            for offset in sorted {
                guard done[offset]! else { break }
                next = offset + 1
                prefix.append(offset)
            }
            guard let next else { continue }
            result.append(TopicPartitionOffset(partition.topic, partition.partition, next))
            if advance {
                for offset in prefix { received[partition]![offset] = nil }
            }
        }
        return result
    }
}
