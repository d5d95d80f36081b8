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

    func publish(_ shards: [FinishedShard], offsets: [TopicPartitionOffset], consumer: KafkaConsumer) async throws(KafkaError) {
        let results = publishResults ? resultMessages(shards) : []
        let acks = shards.map { message(for: $0.ack) }
        guard transactional else {
            try await producer.deliver(results)
            try await producer.deliver(acks)
            if !offsets.isEmpty { try await consumer.commit(offsets) }
            return
        }
        do {
            try producer.beginTransaction()
            try await producer.deliver(results)
            try await producer.deliver(acks)
            try await producer.sendOffsetsToTransaction(offsets, groupMetadata: consumer.groupMetadata())
            try await producer.commitTransaction()
        } catch {
            if error.requiresAbort || !error.isFatal { try? await producer.abortTransaction() }
            throw error
        }
    }

    /// Commits offsets alone (skipped, dead-lettered or superseded records).
    func commitOffsets(_ offsets: [TopicPartitionOffset], consumer: KafkaConsumer) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        guard transactional else { return try await consumer.commit(offsets) }
        do {
            try producer.beginTransaction()
            try await producer.sendOffsetsToTransaction(offsets, groupMetadata: consumer.groupMetadata())
            try await producer.commitTransaction()
        } catch {
            if !error.isFatal { try? await producer.abortTransaction() }
            throw error
        }
    }

    /// One message per result; the headers (the same for every result of an attempt) are built
    /// once per shard and shared, not once per sample.
    private func resultMessages(_ shards: [FinishedShard]) -> [OutgoingMessage] {
        var messages: [OutgoingMessage] = []
        messages.reserveCapacity(shards.reduce(0) { $0 + $1.results.count })
        for shard in shards {
            let headers = OutgoingMessage.headers(for: ResultRecord.self, attempt: shard.ack.attempt)
            for result in shard.results {
                messages.append(OutgoingMessage(topic: topics.results, key: result.id, value: RecordCodec.shared.encode(result),
                                                headers: headers))
            }
        }
        return messages
    }

    private func message(for ack: AckRecord) -> OutgoingMessage {
        .record(ack, topic: topics.acks, key: ack.shard, attempt: ack.attempt)
    }
}

/// Writes a shard's results as JSON lines under the output directory: to a temporary name, then
/// renamed into place, so a retried shard replaces its file rather than duplicating lines.
enum ShardFileWriter {
    static func write(_ results: [ResultRecord], shard: String, directory: String) throws(FlotillaError) {
        var data = Data()
        for result in results {
            data.append(contentsOf: RecordCodec.shared.encode(result))
            data.append(0x0A)
        }
        let final = URL(fileURLWithPath: directory).appendingPathComponent("\(shard).jsonl")
        let temporary = URL(fileURLWithPath: directory).appendingPathComponent(".\(shard).jsonl.\(getpid()).tmp")
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try data.write(to: temporary)
            if rename(temporary.path, final.path) != 0 {
                throw FlotillaError(.internal, "rename \(temporary.path) → \(final.path): \(String(cString: strerror(errno)))")
            }
        } catch let error as FlotillaError {
            throw error
        } catch {
            throw FlotillaError(.internal, "cannot write results of \(shard) under \(directory)", underlying: error)
        }
    }
}
