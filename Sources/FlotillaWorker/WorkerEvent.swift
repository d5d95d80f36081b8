import FlotillaCore
import FlotillaKafka

/// An answer the event loop owes a task that asked it something: nil when the worker stops (or
/// the loop has ended), which ends the asking task.
typealias Reply<T: Sendable> = CheckedContinuation<T?, Never>

/// Everything that reaches the worker's event loop. Each producer is bounded on its own — the
/// intake, the ledger tail and the heartbeat wait for their answers; executions are at most
/// `slots` (+1) and send a few events each; one commit is in flight at a time — so the stream
/// holds a handful of events at most.
enum WorkerEvent: Sendable {
    /// The group's records and rebalances; answered with the room for more (parked while there
    /// is none).
    case intake([IntakeItem], Reply<Int>)
    /// The intake starts: answered with the room there is.
    case roomWanted(Reply<Int>)
    /// Acks and control records; answered with the `take` commands for this worker, whose shard
    /// records the ledger tail then fetches (`taken`).
    case ledger([JobRecord], Reply<[ControlRecord]>)
    /// Shard records named by `take` commands (`express`: recovered shards, else the warm start).
    case taken([QueuedShard], express: Bool, reason: String)
    /// An execution ended: what it produced, or nil when it was abandoned.
    case finished(run: String, FinishedShard?)
    /// A transaction of these shards is about to be tried: answered with the offsets it commits.
    case offsetsWanted([FinishedShard], Reply<[TopicPartitionOffset]>)
    case published([FinishedShard])
    case settled
    case offsetsCommitted
    /// A commit failed for good: the worker exits with `error`.
    case commitFailed(FlotillaError)
    /// The heartbeat task waits for its next beat: answered when one is due.
    case beatWanted(Reply<Beat>)
    /// A deadline the loop set may have passed.
    case tick
    case drain
    case stop(WorkerExit)
    /// A task that reads Kafka failed for good: the worker exits with `error`.
    case failed(FlotillaError)
    /// The intake, the ledger tail or the heartbeat ended.
    case sourceEnded
}

/// What the intake read from the group, decoded.
enum IntakeItem: Sendable {
    case shard(QueuedShard)
    /// Received but not to run (dead-lettered): only its offset is released.
    case rejected(TopicPartition, offset: Int64)
    case assigned([TopicPartition])
    case revoked([TopicPartition], lost: Bool)
}

/// A heartbeat as the loop sees it; the heartbeat task adds the predictor pools' states.
struct Beat: Sendable {
    var record: HeartbeatRecord
    /// The worker stops: the last one.
    var final: Bool
}
