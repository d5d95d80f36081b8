import FlotillaCore

/// What the ledger asks the controller to do; `ControllerService` turns each into records and
/// pod-backend calls. The ledger has already counted the action in its own state, so asking
/// again (or replaying the records the action produces) never repeats it.
public enum LedgerAction: Sendable, Hashable {
    /// Publish `record` (a later attempt of its shard) to `partition` of the shards topic (nil:
    /// the producer's partitioner). When `supersede` is true, publish a control `supersede`
    /// record for (shard, attempt) to `*` first, so workers drop the older attempts.
    case reEnqueue(record: ShardRecord, partition: Int?, supersede: Bool)
    /// Publish a dead letter for the shard (it failed `maxAttempts` times).
    case deadLetter(shard: String, attempt: Int, reason: String)
    /// Tell `worker` to stop executing (shard, attempt) without acking it.
    case abandon(worker: String, shard: String, attempt: Int)
    /// Tell `worker` to fetch the record of (shard, attempt) at `partition`@`offset` of the shards
    /// topic and run it: the warm start of a worker still joining the consumer group.
    case take(worker: String, shard: String, attempt: Int, partition: Int, offset: Int64)
    /// Kill `worker` and start a fresh one in its place.
    case replaceWorker(worker: String, reason: String)
    /// Ask every worker to commit one settle transaction (control `settle`), which ends what the
    /// broker left unresolved of their own transactions (`SettleRecord`).
    case settle(reason: String)
    /// Every shard is done or dead: publish the final manifest and stop the fleet.
    case complete(JobStatusSummary)

    /// A short name for logs and tests.
    public var name: String {
        switch self {
        case .reEnqueue(let record, _, _): "re-enqueue \(record.shard)#\(record.attempt) (\(record.reason))"
        case .deadLetter(let shard, let attempt, _): "dead-letter \(shard)#\(attempt)"
        case .abandon(let worker, let shard, let attempt): "abandon \(shard)#\(attempt) on \(worker)"
        case .take(let worker, let shard, let attempt, _, _): "warm-start \(shard)#\(attempt) on \(worker)"
        case .replaceWorker(let worker, _): "replace \(worker)"
        case .settle: "settle"
        case .complete: "complete"
        }
    }
}
