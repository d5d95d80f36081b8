import FlotillaCore
import RdKafka

/// A transaction that never ends holds the acks topic.
///
/// Committed readers stop at a partition's last stable offset, the first record of its oldest
/// open transaction. If that transaction never ends, the controller (and `flotilla results`, and
/// every worker's skip view) never reads past it, and the job waits forever for acks of shards its
/// workers reported committed. Apache Kafka aborts such a transaction after
/// `transaction.timeout.ms`; Tansu 0.6 keeps it open (seen at 10 workers with a `kill -9`,
/// docs/BENCHMARKS.md). Its producer's transactional id ends it: a worker started with the same id
/// fences the old producer and aborts what it left open (`OpenTransactionTests`). So the controller
/// reads the record it is held at, with a `read_uncommitted` reader, and replaces the worker that
/// wrote it. In the one real hold seen with this check in place, the hold ended after the sixth
/// replacement, five minutes in: whether that replacement ended it is not known.
extension ControllerService {
    /// How long a reported commit may stay unreadable before the controller looks for the holder:
    /// far beyond a commit's round trip and a worker's commit timeout (30 s).
    static func heldAcksAfterMs(_ settings: LedgerSettings) -> Int64 { max(30_000, 10 * settings.workerTimeoutMs) }

    /// The replacement of the worker whose open transaction holds the acks topic, once a reported
    /// commit has stayed unreadable for `heldAcksAfterMs`; looks again after 2, 4, then 8 times that.
    func checkHeldAcks(_ run: inout ControllerRun, _ connection: Connection, now: Int64) async -> [LedgerAction] {
        let after = Self.heldAcksAfterMs(run.ledger.settings)
        // The ledger walk visits every shard: once a second, not every tick.
        guard now >= run.nextHeldAcksWalk else { return [] }
        run.nextHeldAcksWalk = now + 1_000
        guard let since = run.ledger.oldestUnsettledCommit else {
            run.heldAcks = nil
            return []
        }
        guard now - since >= after, now >= run.nextHeldAcksCheck else { return [] }
        // Backing off: on Tansu a replacement did not always end the hold at once (six, 50 s
        // apart, in one run); a restart a minute is churn, one every few minutes is not.
        run.heldAcksLooks += 1
        run.nextHeldAcksCheck = now + after << Int64(min(run.heldAcksLooks - 1, 3))
        // Only an end that has not moved for as long: under load the last stable offset lags
        // (one open transaction after another), but it moves.
        for (partition, end) in run.acksEnds.sorted(by: { $0.key.partition < $1.key.partition }) where now - end.since >= after {
            let end = end.offset
            guard let holder = await connection.reader.uncommittedAck(partition, at: end) else { continue }
            let held = "\((now - since) / 1_000) s"
            logger.error("an open transaction holds the acks topic: committed readers stop at it", metadata: [
                "flotilla.partition": "\(partition)", "flotilla.offset": "\(end)", "flotilla.worker": "\(holder.worker)",
                "flotilla.shard": "\(holder.shard)", "flotilla.unreadable-for": "\(held)",
            ])
            let what = "an open transaction of worker \(holder.worker) holds the acks topic at \(partition)@\(end) (commits unreadable for \(held))"
            guard backend.managesWorkers else {
                run.heldAcks = what + ": restart that worker with the same --worker-id; its successor ends the transaction"
                return []
            }
            run.heldAcks = what + ": replacing it; its successor ends the transaction"
            return [.replaceWorker(worker: holder.worker, reason: "its open transaction has held the acks topic for \(held)")]
        }
        return []
    }
}

extension ControllerRun {
    /// The committed read of acks `partition` reached its end at `offset`.
    mutating func reachedAcksEnd(_ partition: TopicPartition, _ offset: Int64) {
        if acksEnds[partition]?.offset != offset { acksEnds[partition] = (offset, Timestamp.now()) }
    }
}
