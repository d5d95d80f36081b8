import FlotillaCore
import RdKafka

/// A shard record taken from Kafka and not yet started.
struct QueuedShard: Sendable {
    var record: ShardRecord
    var partition: TopicPartition
    var offset: Int64
    /// Fetched on the controller's `take` command rather than from the group's assignment: its
    /// offset is not this worker's to commit (the group copy is skipped once the shard is done).
    var express = false
}

/// A shard execution in progress.
struct RunningShard: Sendable {
    var queued: QueuedShard
    var run: String
    var startedAt: Int64
    var done: Int = 0
    var abandoned = false
}

/// Everything the worker's loops share, kept under one lock (see `Worker`).
struct WorkerState: Sendable {
    var queue: [QueuedShard] = []
    var running: [String: RunningShard] = [:]
    var finished: [FinishedShard] = []
    /// Taken by the committer, in a transaction now: still in flight for the controller.
    var publishing: [FinishedShard] = []
    /// Done shards committed since the last heartbeat (the heartbeat reports and clears them).
    var committed: [CommittedShard] = []
    /// Per assigned partition, the offset after the last record received.
    var positions: [TopicPartition: Int64] = [:]
    var offsets = OffsetTracker()
    var assigned: Set<TopicPartition> = []
    var draining = false
    var stopping: WorkerExit?
    var samplesSinceHeartbeat = 0
    var shardsDone = 0
    /// Samples of every shard published, since the worker started (for its CPU per sample).
    var samplesDone = 0

    /// Drops queued shards and abandons running ones of partitions this worker lost.
    mutating func revoke(_ partitions: [TopicPartition]) {
        let lost = Set(partitions)
        queue.removeAll { lost.contains($0.partition) }
        for (key, shard) in running where lost.contains(shard.queued.partition) { running[key]!.abandoned = true }
        finished.removeAll { lost.contains($0.partition) }
        offsets.remove(partitions)
        for partition in partitions { positions[partition] = nil }
        assigned.subtract(lost)
    }

    /// Whether this attempt of the record's shard waits in the queue.
    func isQueued(_ record: ShardRecord) -> Bool {
        queue.contains { $0.record.shard == record.shard && $0.record.attempt == record.attempt }
    }

    /// Whether this attempt of the record's shard runs here now.
    func isRunning(_ record: ShardRecord) -> Bool {
        running.values.contains { $0.queued.record.shard == record.shard && $0.queued.record.attempt == record.attempt }
    }

    /// Whether this attempt of the record's shard finished here and waits to be published.
    func isUnpublished(_ record: ShardRecord) -> Bool {
        (finished + publishing).contains { $0.ack.shard == record.shard && $0.ack.attempt == record.attempt }
    }

    /// Marks a record finished without publishing anything for it.
    mutating func release(_ shard: QueuedShard) {
        offsets.finished(shard.partition, shard.offset)
    }
}
