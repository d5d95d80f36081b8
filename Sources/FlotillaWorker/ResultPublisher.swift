import FlotillaCore
import FlotillaKafka
import Foundation
import Logging
import RdKafka

/// A shard execution ready to publish: its results, its ack and where its record came from.
struct FinishedShard: Sendable {
    var partition: TopicPartition
    var offset: Int64
    var results: [ResultRecord]
    var ack: AckRecord
    /// When the execution ended: a shard waits at most `WorkerMachine.publishLinger` from then for
    /// others to share its transaction.
    var finishedAt: ContinuousClock.Instant = .now
}

/// Publishes finished shards. In exactly-once mode the results, the acks and the consumer offsets
/// of a group of shards go in one transaction; otherwise results, then acks, then an offset commit.
///
/// Results are delivered before their ack is produced: a visible ack then always implies its
/// results are written, even on brokers that do not hide aborted transactions.
struct ResultPublisher: Sendable {
    let producer: KafkaProducer
    let transactional: Bool
    let topics: TopicNames
    let publishResults: Bool
    /// The record size limit (`kafka.maxMessageBytes`) that result batches are cut to.
    let maxMessageBytes: Int
    /// The results topic's partition count, or nil when unknown (records then go by key hash).
    let resultPartitions: Int32?

    func publish(_ shards: [FinishedShard], offsets: [TopicPartitionOffset], consumer: KafkaConsumer) async throws(KafkaError) {
        let results = publishResults ? resultMessages(shards) : []
        let acks = shards.map { message(for: $0.ack) }
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
    func commitOffsets(_ offsets: [TopicPartitionOffset], consumer: KafkaConsumer) async throws(KafkaError) {
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
            try await producer.deliver([.record(record, topic: topics.acks, key: record.worker, partition: 0)])
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
    private func resultMessages(_ shards: [FinishedShard]) -> [OutgoingMessage] {
        shards.flatMap { shard in
            let partition = resultPartition(of: shard)
            return ResultBatch.pack(shard.results, maxMessageBytes: maxMessageBytes).map { batch -> OutgoingMessage in
                .record(batch, topic: topics.results, key: batch.shard, partition: partition, attempt: batch.attempt)
            }
        }
    }

    /// The results partition of a shard's records: its shard record's partition modulo the results
    /// topic's count (`kafka.resultPartitions`, default 1), so a worker's transactions touch few
    /// partitions (on Tansu each partition a transaction writes costs: results spread by key hash
    /// over 60 partitions made 30 workers 3–4× slower, measured).
    func resultPartition(of shard: FinishedShard) -> Int32? {
        guard let resultPartitions, resultPartitions > 0 else { return nil }
        return shard.partition.partition % resultPartitions
    }

    private func message(for ack: AckRecord) -> OutgoingMessage {
        .record(ack, topic: topics.acks, key: ack.shard, attempt: ack.attempt)
    }
}

extension ResultRecord {
    /// Where `results` hold one whose record alone would not fit in `maxMessageBytes` (usually
    /// nowhere). Read through a buffer pointer: a method call on each array element copied every
    /// result (a retain and release of each of its strings), a measurable cost per sample.
    static func oversizedIndices(_ results: [ResultRecord], maxMessageBytes: Int) -> [Int] {
        results.withUnsafeBufferPointer { buffer in
            buffer.indices.filter { ResultBatch.overheadBytes(of: buffer[$0]) + buffer[$0].entryJSONSize > maxMessageBytes }
        }
    }

    /// An error result in place of this one when a results record holding it alone would not fit
    /// in `maxMessageBytes` (the producer would reject it, and with it the whole transaction); nil
    /// when it fits.
    func oversized(maxMessageBytes: Int) -> ResultRecord? {
        let size = ResultBatch.overheadBytes(of: self) + entryJSONSize
        guard size > maxMessageBytes, case .output = outcome else { return nil }
        return ResultRecord(job: job, id: id, shard: shard, attempt: attempt, run: run, outcome: .error(
            "the result is about \(size) bytes, over the \(maxMessageBytes)-byte record limit (kafka.maxMessageBytes); make the output smaller or raise the limit"),
            stage: stage)
    }
}

/// Writes an execution's results as JSON lines under `outputs.directory` (see `OutputDirectory`:
/// the controller keeps the winner's file).
enum ShardFileWriter {
    static func write(_ results: [ResultRecord], shard: String, run: String, directory: String) throws(FlotillaError) {
        var data = Data()
        for result in results {
            data.append(contentsOf: RecordCodec.shared.encode(result))
            data.append(0x0A)
        }
        try OutputDirectory(directory).writePending(data, shard: shard, run: run)
    }
}
