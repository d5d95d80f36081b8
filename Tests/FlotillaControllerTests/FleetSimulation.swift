import FlotillaController
import FlotillaCore

/// A fleet of simulated workers around a `ShardLedger`, on an injected clock: each worker owns
/// partitions, takes their records in offset order, runs one shard at a time, reports heartbeats
/// (a consistent snapshot: in flight, committed since the last one, positions), and its acks
/// reach the ledger only after `ackLag` — the view a read_committed tail gives on a broker that
/// holds acks back while transactions are open. Records the ledger re-enqueues are appended to
/// their target partition and read back after `recordLag`.
struct FleetSimulation {
    struct Worker {
        var id: String
        var partitions: [Int]
        var shardMs: Int64
        var positions: [Int: Int] = [:]
        var current: (index: Int, attempt: Int, run: String, finishAt: Int64, startedAt: Int64)?
        var committed: [CommittedShard] = []
        var nextHeartbeat: Int64
    }

    var ledger: ShardLedger
    var workers: [Worker]
    /// Partition → its records (shard index, attempt).
    var log: [[(index: Int, attempt: Int)]]
    var now: Int64 = 0
    let ackLag: Int64
    let recordLag: Int64
    let shardCount: Int
    /// Records and acks on their way to the ledger: (visible at, what).
    var inbound: [(at: Int64, event: Inbound)] = []
    /// Shards done as the workers see it (their own commits and visible acks) and superseded attempts.
    var done: Set<Int> = []
    var supersededBelow: [Int: Int] = [:]
    /// Records (shard index, attempt) their owner drops without running them, as if offsets had been committed past them.
    var dropped: Set<[Int]> = []
    var actions: [LedgerAction] = []
    var executions = 0

    enum Inbound {
        case record(ShardRecord, partition: Int, offset: Int)
        case ack(AckRecord)
    }

    init(workers count: Int, shards: Int, partitionsPerWorker: Int = 8, shardMs: (Int) -> Int64 = { _ in 40 },
         ackLag: Int64, recordLag: Int64 = 300) {
        let partitions = count * partitionsPerWorker
        var ledger = ShardLedger(job: Fixtures.job, settings: LedgerSettings(
            maxAttempts: 3, heartbeatMs: 1_000, workerTimeoutMs: 5_000, shardTimeoutMs: 60_000,
            speculative: true, shardPartitions: partitions))
        ledger.apply(manifest: Fixtures.manifest(shards: shards))
        self.ledger = ledger
        self.ackLag = ackLag
        self.recordLag = recordLag
        self.shardCount = shards
        log = Array(repeating: [], count: partitions)
        workers = (0..<count).map { w in
            Worker(id: "w\(w + 1)", partitions: Array(stride(from: w, to: partitions, by: count)), shardMs: shardMs(w),
                   nextHeartbeat: Int64(w * 997 % 1_000))
        }
        for index in 0..<shards {
            let partition = index % partitions
            log[partition].append((index, 0))
            self.ledger.apply(shard: Fixtures.shard(index), partition: partition, offset: Int64(log[partition].count - 1))
        }
    }

    /// Runs until the ledger completes or `limit` ms pass; true when it completed.
    mutating func run(limit: Int64, step: Int64 = 50, tick: Int64 = 250) -> Bool {
        while now <= limit {
            for w in workers.indices { advance(worker: w) }
            deliver()
            if now % tick == 0 {
                let tickActions = ledger.tick(now: now)
                actions += tickActions
                apply(tickActions)
                if tickActions.summary != nil { return true }
            }
            now += step
        }
        return false
    }

    var reEnqueues: [(record: ShardRecord, partition: Int?, supersede: Bool)] { actions.reEnqueues }

    private mutating func advance(worker w: Int) {
        var worker = workers[w]
        if let current = worker.current, current.finishAt <= now {
            worker.current = nil
            done.insert(current.index)
            worker.committed.append(CommittedShard(shard: Fixtures.id(current.index), attempt: current.attempt, run: current.run, samples: 2))
            let ack = Fixtures.ack(current.index, attempt: current.attempt, worker: worker.id, startedAt: current.startedAt,
                                   finishedAt: now, run: current.run)
            inbound.append((now + ackLag, .ack(ack)))
        }
        while worker.current == nil, let partition = worker.partitions.first(where: { (worker.positions[$0] ?? 0) < log[$0].count }) {
            let offset = worker.positions[partition] ?? 0
            worker.positions[partition] = offset + 1
            let record = log[partition][offset]
            if done.contains(record.index) || (supersededBelow[record.index] ?? 0) > record.attempt
                || dropped.contains([record.index, record.attempt]) { continue }
            executions += 1
            worker.current = (record.index, record.attempt, "\(worker.id)-\(record.index)-\(record.attempt)-\(now)",
                              now + worker.shardMs, now)
        }
        if now >= worker.nextHeartbeat {
            worker.nextHeartbeat = now + 1_000
            let inFlight = worker.current.map {
                [InFlightShard(shard: Fixtures.id($0.index), attempt: $0.attempt, run: $0.run, done: 0, total: 2, startedAt: $0.startedAt)]
            } ?? []
            let heartbeat = HeartbeatRecord(
                job: Fixtures.job, worker: worker.id, host: "sim", pid: w + 1, time: now, inFlight: inFlight,
                samplesPerSecond: Double(2_000) / Double(worker.shardMs), partitions: worker.partitions,
                committed: worker.committed,
                positions: worker.partitions.map { PartitionPosition(partition: $0, next: Int64(worker.positions[$0] ?? 0)) })
            worker.committed = []
            ledger.apply(heartbeat: heartbeat, receivedAt: now)
        }
        workers[w] = worker
    }

    private mutating func deliver() {
        let ready = inbound.filter { $0.at <= now }
        inbound.removeAll { $0.at <= now }
        for item in ready {
            switch item.event {
            case .record(let record, let partition, let offset): ledger.apply(shard: record, partition: partition, offset: Int64(offset))
            case .ack(let ack): ledger.apply(ack: ack)
            }
        }
    }

    private mutating func apply(_ actions: [LedgerAction]) {
        for case .reEnqueue(let record, let target, let supersede) in actions {
            let index = Int(record.shard.dropFirst())!
            let partition = target ?? 0
            log[partition].append((index, record.attempt))
            if supersede { supersededBelow[index] = max(supersededBelow[index] ?? 0, record.attempt) }
            inbound.append((now + recordLag, .record(record, partition: partition, offset: log[partition].count - 1)))
        }
    }
}
