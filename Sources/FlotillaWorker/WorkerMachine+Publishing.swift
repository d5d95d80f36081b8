import FlotillaCore
import FlotillaKafka

extension WorkerMachine {
    /// The next transaction at `now`: up to `publishBatch` finished shards and `publishBytes` of
    /// results (at least one shard), in flight until `published` (the shell retries a failed
    /// transaction with the same shards, asking `offsetsToCommit` again). Nil while one is in
    /// flight, or while the finished shards may still wait for company (`publishDue`).
    mutating func nextPublish(at now: ContinuousClock.Instant) -> [FinishedShard]? {
        guard publishing.isEmpty, !finished.isEmpty else { return nil }
        if let due = publishDue, now < due { return nil }
        var count = 0
        var bytes = 0
        for index in finished.indices.prefix(publishBatch) {
            let shardBytes = finished[index].resultBytes
            if count > 0 && bytes + shardBytes > publishBytes { break }
            count += 1
            bytes += shardBytes
        }
        publishing = Array(finished.prefix(count))
        finished.removeFirst(count)
        return publishing
    }

    /// Until when the finished shards may wait for others to share their transaction: nil when
    /// they go at once — a transaction's worth by count, half of one by bytes, nothing else running
    /// to wait for, or draining or stopping.
    ///
    /// Half by bytes: the intake pauses while finished and publishing shards hold more than
    /// `publishBytes`, so shards waiting for a whole transaction's bytes next to one committing
    /// paused it until their linger ran out (a fast model, 64 shards a second of ~150 KB of
    /// results each: the time its worker ran no shard went from ~40 % to ~30 %).
    var publishDue: ContinuousClock.Instant? {
        guard !finished.isEmpty, finished.count < publishBatch, !running.isEmpty, phase == .running,
              Self.resultBytes(of: finished) < publishBytes / 2 else { return nil }
        return finished[0].finishedAt + publishLinger
    }

    /// The offsets a transaction of `shards` commits, recomputed for each try: a rebalance may
    /// have taken partitions away since.
    func offsetsToCommit(assumingPublished shards: [FinishedShard]) -> [TopicPartitionOffset] {
        var offsets = offsets
        return offsets.commitOffsets(assumingFinished: shards.map { ($0.partition, $0.offset) }, advance: false)
    }

    /// These shards' transaction committed (`shards` may differ from the batch taken, when the
    /// broker rejected some and they were re-sent as failed acks).
    mutating func published(_ shards: [FinishedShard]) {
        for shard in shards { offsets.finished(shard.partition, shard.offset) }
        _ = offsets.commitOffsets(advance: true)
        let samples = shards.reduce(0) { $0 + $1.results.count }
        samplesSinceHeartbeat += samples
        shardsDone += shards.count
        samplesDone += samples
        committed += shards.filter { $0.ack.status == .done }.map {
            CommittedShard(shard: $0.ack.shard, attempt: $0.ack.attempt, run: $0.ack.run, samples: $0.ack.samples,
                           errorSamples: $0.ack.errorSamples)
        }
        let batch = publishing
        publishing = []
        for shard in batch { requeueHeld(of: shard.ack) }
        if !shards.isEmpty { unsettled = true }
        // Still waiting for a group assignment: work comes from the controller's warm start,
        // which hands out more as soon as a heartbeat shows these committed. Gone idle: the
        // controller may steal for it before its next beat (the tail of a job is where a beat's
        // wait costs: `tools/bench/balance`).
        if !shards.isEmpty && assigned.isEmpty { heartbeatWanted = true }
        if !shards.isEmpty && running.isEmpty && finished.isEmpty && queue.isEmpty && held.isEmpty { idleBeatWanted = true }
    }

    /// Whether to commit a settle transaction now: asked by the controller, or idle (nothing held,
    /// running or waiting to publish) after publishing, so its last transaction is not left
    /// unresolved by a broker that resolves only on a later one (Tansu 0.6, `SettleRecord`).
    /// Not while stopping: the fleet is being shut down, and the broker may already be gone.
    var wantsSettle: Bool {
        guard !isStopping else { return false }
        return settleAsked || (unsettled && queue.isEmpty && running.isEmpty && finished.isEmpty && publishing.isEmpty && held.isEmpty)
    }

    mutating func askSettle() { settleAsked = true }

    /// A settle transaction committed.
    mutating func settled() {
        unsettled = false
        settleAsked = false
        committing = nil
    }

    /// Offsets of released records to commit outside a transaction (skipped, dead-lettered).
    func pendingOffsets() -> [TopicPartitionOffset] {
        var offsets = offsets
        return offsets.commitOffsets(advance: false)
    }

    /// Those offsets were committed.
    mutating func offsetsCommitted() {
        _ = offsets.commitOffsets(advance: true)
        committing = nil
    }

    // MARK: heartbeat

    /// What the next heartbeat says of the shards here; clears the committed list and the rate count.
    /// Finished shards stay in flight until their transaction commits: a shard the controller sees
    /// neither running nor committed would look like waiting work.
    mutating func heartbeatReport() -> (inFlight: [InFlightShard], queued: [String], committed: [CommittedShard], samples: Int) {
        defer {
            samplesSinceHeartbeat = 0
            committed = []
        }
        let active = running.values.filter { !$0.abandoned }.sorted { $0.startedAt < $1.startedAt }.map {
            InFlightShard(shard: $0.queued.record.shard, attempt: $0.queued.record.attempt, run: $0.run, done: $0.done,
                          total: $0.queued.record.samples, startedAt: $0.startedAt)
        }
        let unpublished = (publishing + finished).map {
            InFlightShard(shard: $0.ack.shard, attempt: $0.ack.attempt, run: $0.ack.run, done: $0.ack.samples,
                          total: $0.ack.samples, startedAt: $0.ack.startedAt)
        }
        return (active + unpublished, queue.map(\.record.shard), committed, samplesSinceHeartbeat)
    }

    var partitionPositions: [PartitionPosition] {
        positions.map { PartitionPosition(partition: Int($0.key.partition), next: $0.value) }.sorted { $0.partition < $1.partition }
    }
}
