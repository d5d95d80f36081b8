import FlotillaCore
import FlotillaKafka

/// A shard record taken from Kafka and not yet started.
struct QueuedShard: Sendable, Equatable {
    var record: ShardRecord
    var partition: TopicPartition
    var offset: Int64
    /// Runs first and may use a slot beyond the rest (a recovered shard the controller sent).
    var express = false
    /// Fetched on the controller's `take` command (express lane or warm start) rather than from
    /// the group's assignment: its offset is not this worker's to commit (the group copy is
    /// skipped once the shard is done), and nobody else will run it if this worker lets it go.
    var taken = false
}

/// A shard execution in progress.
struct RunningShard: Sendable {
    var queued: QueuedShard
    var run: String
    var startedAt: Int64
    var done: Int = 0
    var abandoned = false
}

/// A shard execution ready to publish: its results, its ack and where its record came from.
struct FinishedShard: PublishableShard {
    var partition: TopicPartition
    var offset: Int64
    var results: ResultEntries
    var ack: AckRecord
    /// When the execution ended: a shard waits at most `WorkerMachine.publishLinger` from then for
    /// others to share its transaction.
    var finishedAt: ContinuousClock.Instant = .now

    init(partition: TopicPartition, offset: Int64, results: ResultEntries, ack: AckRecord) {
        self.partition = partition
        self.offset = offset
        self.results = results
        self.ack = ack
    }

    /// About how much memory its results hold until published (their JSON and where each entry
    /// ends): its share of a transaction (`WorkerMachine.publishBytes`).
    var resultBytes: Int { results.bytes.count + 8 * results.count }
}
