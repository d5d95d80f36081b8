import FlotillaController
import FlotillaCore

/// Small builders for ledger tests: records as workers and `flotilla submit` write them.
enum Fixtures {
    static let job = "job-test"

    static func settings(maxAttempts: Int = 3, speculative: Bool = true) -> LedgerSettings {
        LedgerSettings(maxAttempts: maxAttempts, heartbeatMs: 1_000, workerTimeoutMs: 5_000, shardTimeoutMs: 60_000,
                       speculative: speculative, shardPartitions: 8)
    }

    static func ledger(shards count: Int, maxAttempts: Int = 3, speculative: Bool = true,
                       partition: (Int) -> Int = { $0 % 8 }) -> ShardLedger {
        var ledger = ShardLedger(job: job, settings: settings(maxAttempts: maxAttempts, speculative: speculative))
        ledger.apply(manifest: manifest(shards: count))
        for index in 0..<count {
            ledger.apply(shard: shard(index), partition: partition(index), offset: Int64(index))
        }
        return ledger
    }

    static func manifest(shards: Int) -> JobManifest {
        let config = JobConfig(job: job, inputs: [.inline([])], stages: [StageConfig(name: "echo", predictor: .builtin("echo"))],
                               baseDirectory: "/tmp")
        return JobManifest(config: config, shards: shards, samples: shards * 2, createdAt: 0)
    }

    static func id(_ index: Int) -> String { ShardRecord.shardID(index: index) }

    static func shard(_ index: Int, attempt: Int = 0, reason: ShardReason = .initial, at time: Int64 = 0) -> ShardRecord {
        let samples = [InlineSample(id: "\(index)-a", input: .string("a")), InlineSample(id: "\(index)-b", input: .string("b"))]
        return ShardRecord(job: job, shard: id(index), attempt: attempt, source: .inline(samples), samples: 2,
                           reason: reason, createdAt: time)
    }

    /// A heartbeat; `running` lists (shard index, attempt, done samples).
    static func heartbeat(_ worker: String, at time: Int64, running: [(Int, Int, Int)] = [], queued: [Int] = [],
                          partitions: [Int]?, startedAt: Int64 = 0) -> HeartbeatRecord {
        HeartbeatRecord(
            job: job, worker: worker, host: "localhost", pid: 1, time: time,
            inFlight: running.map { InFlightShard(shard: id($0.0), attempt: $0.1, run: run(worker, $0.0, $0.1), done: $0.2,
                                                  total: 2, startedAt: startedAt) },
            queued: queued.map(id), partitions: partitions)
    }

    static func run(_ worker: String, _ index: Int, _ attempt: Int) -> String { "\(worker)-\(index)-\(attempt)" }

    static func ack(_ index: Int, attempt: Int = 0, worker: String, status: AckStatus = .done, error: String? = nil,
                    startedAt: Int64 = 0, finishedAt: Int64 = 1_000, run: String? = nil) -> AckRecord {
        AckRecord(job: job, shard: id(index), attempt: attempt, run: run ?? Self.run(worker, index, attempt), worker: worker,
                  samples: 2, errorSamples: 0, status: status, error: error, startedAt: startedAt, finishedAt: finishedAt)
    }
}

extension LedgerAction {
    /// The re-enqueued record and its target, when this is a re-enqueue.
    var reEnqueued: (record: ShardRecord, partition: Int?, supersede: Bool)? {
        if case .reEnqueue(let record, let partition, let supersede) = self { return (record, partition, supersede) }
        return nil
    }
}

extension Array where Element == LedgerAction {
    var reEnqueues: [(record: ShardRecord, partition: Int?, supersede: Bool)] { compactMap(\.reEnqueued) }
    var replaced: [String] {
        compactMap { if case .replaceWorker(let worker, _) = $0 { worker } else { nil } }
    }
    var deadLetters: [String] {
        compactMap { if case .deadLetter(let shard, _, _) = $0 { shard } else { nil } }
    }
    var summary: JobStatusSummary? {
        for action in self { if case .complete(let summary) = action { return summary } }
        return nil
    }
}
