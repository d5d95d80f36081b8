/// Where re-enqueued shards go during one tick: a partition owned by the least-loaded live worker.
///
/// Load is what a worker already has to do: shards in flight, queued, and still waiting in Kafka
/// on its partitions, plus what this tick already sent it.
struct TargetPlan: Sendable {
    /// Live (not lost) workers.
    private(set) var live: Set<String>
    /// Partition → its live owner.
    private(set) var owner: [Int: String] = [:]
    /// Live running workers that own partitions → those partitions (the possible targets).
    private(set) var partitions: [String: [Int]] = [:]
    private(set) var load: [String: Int] = [:]
    private(set) var pendingByPartition: [Int: Int] = [:]
    /// Live worker → the shards in its local queue.
    private(set) var queuedBy: [String: [String]] = [:]
    /// Shards some live worker holds in its local queue.
    private(set) var queued: Set<String> = []

    init(ledger: ShardLedger, now: Int64) {
        live = Set(ledger.workers.values.filter { !$0.lost }.map(\.id))
        for worker in ledger.workers.values where !worker.lost {
            queuedBy[worker.id] = worker.queued
            queued.formUnion(worker.queued)
            load[worker.id] = worker.inFlight.count + worker.queued.count
            // Draining or stopping workers take nothing new: never a target.
            if worker.state == .running, let owned = worker.partitions, !owned.isEmpty {
                partitions[worker.id] = owned.sorted()
            }
            for partition in worker.partitions ?? [] { owner[partition] = worker.id }
        }
        for entry in ledger.shards.openEntries where ledger.isWaitingInKafka(entry, live: live, queued: queued, owner: owner) {
            guard let partition = entry.attempts[entry.latestAttempt]?.partition else { continue }
            pendingByPartition[partition, default: 0] += 1
            if let owner = owner[partition] { load[owner, default: 0] += 1 }
        }
    }

    /// Forgets a worker that was just found lost.
    mutating func remove(_ worker: String) {
        live.remove(worker)
        partitions[worker] = nil
        load[worker] = nil
        owner = owner.filter { $0.value != worker }
        queuedBy[worker] = nil
        queued = Set(queuedBy.values.joined())
    }

    /// Picks the least-loaded live worker (other than `excluding`, unless it is the only one) and
    /// its partition with the fewest waiting records, and counts the shard sent there.
    /// Nil when no live worker reports partitions (the producer's partitioner decides).
    mutating func target(excluding: Set<String> = []) -> (worker: String, partition: Int)? {
        var candidates = partitions.keys.filter { !excluding.contains($0) }
        if candidates.isEmpty { candidates = Array(partitions.keys) }
        guard let worker = candidates.min(by: { (load[$0] ?? 0, $0) < (load[$1] ?? 0, $1) }) else { return nil }
        return (worker, assign(to: worker))
    }

    /// The partition of `worker` with the fewest waiting records; counts the shard sent there.
    mutating func assign(to worker: String) -> Int {
        let owned = partitions[worker] ?? []
        let partition = owned.min { (pendingByPartition[$0] ?? 0, $0) < (pendingByPartition[$1] ?? 0, $1) } ?? 0
        pendingByPartition[partition, default: 0] += 1
        load[worker, default: 0] += 1
        return partition
    }
}
