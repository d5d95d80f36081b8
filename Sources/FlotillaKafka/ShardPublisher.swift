import FlotillaCore
import RdKafka

/// A shard execution ready to publish: its results, its ack, and the shards partition its record
/// came from (its results go to the matching results partition).
public protocol PublishableShard: Sendable {
    var results: ResultEntries { get }
    var ack: AckRecord { get }
    var partition: TopicPartition { get }
}

/// Publishes finished shards. In exactly-once mode the results, the acks and the consumer offsets
/// of a group of shards go in one transaction; otherwise results, then acks, then an offset commit.
///
/// Results are delivered before their ack is produced: a visible ack then always implies its
/// results are written, even on brokers that do not hide aborted transactions.
struct ShardPublisher: Sendable {
    let producer: KafkaProducer
    let consumer: KafkaConsumer
    let transactional: Bool
    let topics: TopicNames
    let publishResults: Bool
    /// The record size limit (`kafka.maxMessageBytes`) that result batches are cut to.
    let maxMessageBytes: Int
    /// The results topic's partition count, or nil when unknown (records then go by key hash).
    let resultPartitions: Int32?

    func publish<Shard: PublishableShard>(_ shards: [Shard], offsets: [TopicPartitionOffset]) async throws(KafkaError) {
        let results = publishResults ? resultMessages(shards) : []
        let acks = shards.map { OutgoingRecord($0.ack, topic: topics.acks, key: $0.ack.shard, attempt: $0.ack.attempt).message }
        guard transactional else {
            try await producer.deliver(results)
            try await producer.deliver(acks)
            if !offsets.isEmpty { try await consumer.commit(offsets) }
            return
        }
        try await inTransaction { () async throws(KafkaError) in
            try await producer.deliver(results)
            try await producer.deliver(acks)
            try await producer.sendOffsetsToTransaction(offsets, groupMetadata: consumer.groupMetadata())
        }
    }

    /// Commits offsets alone (skipped, dead-lettered or superseded records).
    func commitOffsets(_ offsets: [TopicPartitionOffset]) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        guard transactional else { return try await consumer.commit(offsets) }
        try await inTransaction { () async throws(KafkaError) in
            try await producer.sendOffsetsToTransaction(offsets, groupMetadata: consumer.groupMetadata())
        }
    }

    /// Commits one transaction holding `record` alone, on the acks topic (`SettleRecord`); nothing
    /// outside exactly-once mode.
    func settle(_ record: SettleRecord) async throws(KafkaError) {
        guard transactional else { return }
        try await inTransaction { () async throws(KafkaError) in
            try await producer.deliver([OutgoingRecord(record, topic: topics.acks, key: record.worker, partition: 0).message])
        }
    }

    /// Runs `body` in a transaction: begin, body, commit; aborted when it fails and can be.
    private func inTransaction(_ body: () async throws(KafkaError) -> Void) async throws(KafkaError) {
        do {
            try producer.beginTransaction()
            try await body()
            try await producer.commitTransaction()
        } catch {
            if error.requiresAbort || !error.isFatal { await abort() }
            throw error
        }
    }

    /// Aborts the open transaction. An abort that times out carries on inside librdkafka and must
    /// be called again until it completes: a `begin` before that fails ("Conflicting
    /// abort_transaction API call is already in progress"), which looped 100 workers on a broker
    /// slowed to seconds per request (measured).
    private func abort() async {
        for attempt in 1...20 {
            do {
                try await producer.abortTransaction()
                return
            } catch {
                // Fatal (fenced): the caller exits. Anything but a timeout or a retriable error
                // (no transaction open) leaves nothing to wait for.
                guard !error.isFatal, error.isRetriable || error.name == "_TIMED_OUT" || error.name == "_CONFLICT" else { return }
                try? await Task.sleep(for: .milliseconds(min(2_000, 100 * attempt)))
            }
        }
    }

    /// A few records per shard (`ResultBatch`), not one per sample: per-record costs on both
    /// sides of the wire were most of what publishing cost.
    private func resultMessages<Shard: PublishableShard>(_ shards: [Shard]) -> [OutgoingMessage] {
        shards.flatMap { shard in
            let partition = resultPartition(ofShardsPartition: shard.partition.partition)
            return shard.results.packed(maxMessageBytes: maxMessageBytes).map { batch -> OutgoingMessage in
                OutgoingRecord(batch, topic: topics.results, key: batch.shard, partition: partition, attempt: batch.attempt).message
            }
        }
    }

    /// The results partition of a shard's records: its shard record's partition modulo the results
    /// topic's count (`kafka.resultPartitions`, default 1), so a worker's transactions touch few
    /// partitions (on Tansu each partition a transaction writes costs: results spread by key hash
    /// over 60 partitions made 30 workers 3–4× slower, measured).
    func resultPartition(ofShardsPartition partition: Int32) -> Int32? {
        guard let resultPartitions, resultPartitions > 0 else { return nil }
        return partition % resultPartitions
    }
}
