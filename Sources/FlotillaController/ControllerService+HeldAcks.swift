import FlotillaCore
import FlotillaKafka

/// A transaction that never ends holds the acks topic.
///
/// Committed readers stop at a partition's last stable offset, the first record of its oldest
/// open transaction. If that transaction never ends, the controller (and `flotilla results`, and
/// every worker's skip view) never reads past it, and the job waits forever for acks of shards its
/// workers reported committed. Apache Kafka aborts a forgotten transaction after
/// `transaction.timeout.ms`. Tansu 0.6 has no such timeout, and it resolves a transaction only
/// when every transaction overlapping it is prepared too; when two resolutions race it can leave
/// one resolved transaction holding its range, which blocks every later resolution on those
/// partitions (seen with `RUST_LOG=tansu_storage::dynostore=debug` after a broker pause). The
/// producer's next transaction clears that range, so workers commit a `SettleRecord` when they go
/// idle, and this check asks all of them to settle once more; a holder that is no longer alive
/// (it died mid-transaction) is replaced, and its successor's `InitProducerId` aborts what it left.
extension ControllerService {
    /// How long a reported commit may stay unreadable before the controller looks for the holder:
    /// far beyond a commit's round trip, and long enough for idle workers to have settled.
    static func heldAcksAfterMs(_ settings: LedgerSettings) -> Int64 { max(10_000, 3 * settings.workerTimeoutMs) }

    /// Asks every worker to settle, and replaces the holder if it is not alive, once a reported
    /// commit has stayed unreadable for `heldAcksAfterMs`; looks again after 2, 4, then 8 times that.
    func checkHeldAcks(_ run: inout ControllerRun, _ connection: Connection, now: Int64) async -> [LedgerAction] {
        let after = Self.heldAcksAfterMs(run.ledger.settings)
        // The ledger walk visits every shard: once a second, not every tick.
        guard now >= run.nextHeldAcksWalk else { return [] }
        run.nextHeldAcksWalk = now + 1_000
        guard let since = run.ledger.oldestUnsettledCommit else {
            run.heldAcks = nil
            run.heldAcksLooks = 0
            return []
        }
        guard now - since >= after, now >= run.nextHeldAcksCheck else { return [] }
        run.heldAcksLooks += 1
        run.nextHeldAcksCheck = now + after << Int64(min(run.heldAcksLooks - 1, 3))
        // Only an end that has not moved for as long: under load the last stable offset lags
        // (one open transaction after another), but it moves.
        for (partition, end) in run.acksEnds.sorted(by: { $0.key.partition < $1.key.partition }) where now - end.since >= after {
            let end = end.offset
            guard let holder = await connection.reader.uncommittedWriter(partition, at: end) else { continue }
            let held = "\((now - since) / 1_000) s"
            logger.error("an open transaction holds the acks topic: committed readers stop at it", metadata: [
                "flotilla.partition": "\(partition)", "flotilla.offset": "\(end)", LoggingKeys.worker: "\(holder.worker)",
                "flotilla.record": "\(holder.record)", "flotilla.unreadable-for": "\(held)",
            ])
            let what = "a transaction of worker \(holder.worker) holds the acks topic at \(partition)@\(end) (commits unreadable for \(held))"
            let settle = LedgerAction.settle(reason: "the acks topic is held at \(partition)@\(end)")
            if run.ledger.isLive(holder.worker) {
                run.heldAcks = what + ": asked every worker to settle its transactions"
                return [settle]
            }
            guard backend.managesWorkers else {
                run.heldAcks = what + ": restart that worker with the same --worker-id; its successor ends the transaction"
                return [settle]
            }
            run.heldAcks = what + ": it is not alive, replacing it; its successor ends the transaction"
            return [settle, .replaceWorker(worker: holder.worker, reason: "its open transaction has held the acks topic for \(held)")]
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
