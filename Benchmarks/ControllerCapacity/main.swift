// The controller's capacity, without a broker: what one controller core can dispatch.
//
// Feeds a real `ShardLedger` what a fleet of W workers sends while it runs a job of N shards at
// R shards/s — each shard record, each worker's heartbeat every second (shards in flight, those
// committed since the last one, partition positions, usage), each ack — as JSON bytes decoded by
// the same codec the controller uses, and ticks it every 250 ms with the status snapshot the
// controller takes each tick (`ControllerService.updateBoard`: phases, worker views, backlog, the
// held-acks walk once a second). Only the controller's side is timed: decoding, applying,
// ticking, snapshots. Simulated time: nothing sleeps.
//
// Prints, per fleet size, the controller's CPU per shard and per heartbeat, the mean tick, and
// the shards per second one core could dispatch at that size (N / controller seconds × the job's
// own length, i.e. how many times faster than R it could go).
//
//   swift run -c release controller-capacity [--workers 10,100,1000] [--shards 20000] [--rate 2000]
import FlotillaController
import FlotillaCore
import Foundation

struct Options {
    var workers = [10, 100, 1_000]
    var shards = 20_000
    var rate = 2_000
    var samplesPerShard = 10

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let flag = iterator.next() {
            let value = iterator.next() ?? ""
            switch flag {
            case "--workers": workers = value.split(separator: ",").compactMap { Int($0) }
            case "--shards": shards = Int(value) ?? shards
            case "--rate": rate = Int(value) ?? rate
            default: fatalError("unknown option \(flag); see the header of Benchmarks/ControllerCapacity/main.swift")
            }
        }
    }
}

/// Time spent in the controller's side, by kind.
struct Costs {
    var total: Duration = .zero
    var heartbeats: Duration = .zero
    var heartbeatCount = 0
    var ticks: Duration = .zero
    var tickCount = 0

    mutating func time<T>(_ kind: WritableKeyPath<Costs, Duration>? = nil, _ body: () -> T) -> T {
        let start = ContinuousClock.now
        let value = body()
        let spent = ContinuousClock.now - start
        total += spent
        if let kind { self[keyPath: kind] += spent }
        return value
    }
}

struct Worker {
    let id: String
    let partitions: [Int]
    var next: [Int: Int] = [:]
    var running: (index: Int, run: String, startedAt: Int64, finishAt: Int64)?
    var committed: [CommittedShard] = []
    var samples = 0
}

func simulate(workers count: Int, options: Options) -> (costs: Costs, simulatedMs: Int64, completed: Bool, reEnqueued: Int) {
    let job = "capacity"
    let codec = RecordCodec.shared
    let partitions = 2 * count
    let config = JobConfig(job: job, inputs: [.inline([])], stages: [StageConfig(name: "s", predictor: .builtin("identity"))],
                           baseDirectory: "/")
    var ledger = ShardLedger(job: job, settings: LedgerSettings(
        maxAttempts: 3, heartbeatMs: 1_000, workerTimeoutMs: 10_000, shardTimeoutMs: 60_000, speculative: true,
        shardPartitions: partitions))
    var costs = Costs()
    ledger.apply(manifest: JobManifest(config: config, shards: options.shards, samples: options.shards * options.samplesPerShard, createdAt: 0))
    // The shards topic, as submit publishes it: shard i on partition i % partitions.
    var log = Array(repeating: [Int](), count: partitions)
    let sample = InlineSample(id: "x", input: .int(1))
    for index in 0..<options.shards {
        let partition = index % partitions
        let record = ShardRecord(job: job, shard: ShardRecord.shardID(index: index), source: .inline([sample]),
                                 samples: options.samplesPerShard, createdAt: 0)
        let bytes = codec.encode(record)
        costs.time {
            let decoded = try! codec.decode(ShardRecord.self, from: bytes)
            ledger.apply(shard: decoded, partition: partition, offset: Int64(log[partition].count), receivedAt: 0)
        }
        log[partition].append(index)
    }
    // Each worker runs one shard at a time for W / R seconds: the fleet does R shards/s.
    let shardMs = max(1, Int64(1_000 * count / options.rate))
    var fleet = (0..<count).map { Worker(id: "w\($0 + 1)", partitions: [$0, $0 + count]) }
    var now: Int64 = 0
    var nextTick: Int64 = 0
    var nextHeldAcksWalk: Int64 = 0
    var reEnqueued = 0
    let limit = Int64(options.shards) * 1_000 / Int64(options.rate) * 4 + 60_000
    while now < limit {
        for w in fleet.indices {
            var worker = fleet[w]
            if let running = worker.running, running.finishAt <= now {
                let ack = AckRecord(job: job, shard: ShardRecord.shardID(index: running.index), attempt: 0, run: running.run,
                                    worker: worker.id, samples: options.samplesPerShard, startedAt: running.startedAt, finishedAt: now)
                let bytes = codec.encode(ack)
                costs.time { ledger.apply(ack: try! codec.decode(AckRecord.self, from: bytes)) }
                worker.committed.append(CommittedShard(shard: ack.shard, attempt: 0, run: ack.run, samples: ack.samples))
                worker.samples += ack.samples
                worker.running = nil
            }
            if worker.running == nil, let partition = worker.partitions.first(where: { worker.next[$0, default: 0] < log[$0].count }) {
                let offset = worker.next[partition, default: 0]
                worker.next[partition] = offset + 1
                let index = log[partition][offset]
                worker.running = (index, "\(worker.id)-\(index)-\(now)", now, now + shardMs)
            }
            // Heartbeats every second, spread over the second as real workers' are.
            if (now + Int64(w) * 7) % 1_000 == 0 {
                let inFlight = worker.running.map {
                    [InFlightShard(shard: ShardRecord.shardID(index: $0.index), attempt: 0, run: $0.run, done: 0,
                                   total: options.samplesPerShard, startedAt: $0.startedAt)]
                } ?? []
                let heartbeat = HeartbeatRecord(
                    job: job, worker: worker.id, host: "bench", pid: w + 1, time: now, inFlight: inFlight,
                    samplesPerSecond: Double(options.rate * options.samplesPerShard / count),
                    predictors: [PredictorStatus(stage: "s", processes: 1, busy: inFlight.count)], partitions: worker.partitions,
                    committed: worker.committed,
                    positions: worker.partitions.map { PartitionPosition(partition: $0, next: Int64(worker.next[$0, default: 0])) },
                    usage: WorkerUsage(cpuSeconds: 1, samples: worker.samples, shards: worker.samples / options.samplesPerShard))
                worker.committed = []
                let bytes = codec.encode(heartbeat)
                costs.time(\.heartbeats) {
                    ledger.apply(heartbeat: try! codec.decode(HeartbeatRecord.self, from: bytes), receivedAt: now)
                }
                costs.heartbeatCount += 1
            }
            fleet[w] = worker
        }
        if now >= nextTick {
            nextTick = now + 250
            let done: Bool = costs.time(\.ticks) {
                let actions = ledger.tick(now: now)
                reEnqueued += actions.filter { if case .reEnqueue = $0 { true } else { false } }.count
                // What `updateBoard` reads every tick, and the held-acks walk once a second.
                _ = ledger.phaseCounts
                _ = ledger.workerViews(now: now)
                _ = ledger.reEnqueues
                _ = ledger.samplesDone
                _ = ledger.samplesRemaining
                _ = ledger.busyWorkers
                _ = ledger.backlog
                if now >= nextHeldAcksWalk {
                    nextHeldAcksWalk = now + 1_000
                    _ = ledger.oldestUnsettledCommit
                }
                return actions.contains { if case .complete = $0 { true } else { false } }
            }
            costs.tickCount += 1
            if done { return (costs, now, true, reEnqueued) }
        }
        now += 1
    }
    return (costs, now, false, reEnqueued)
}

func micros(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12
}

let options = Options(CommandLine.arguments)
print("controller capacity: \(options.shards) shards of \(options.samplesPerShard) samples, fleet at \(options.rate) shards/s, simulated (no broker)")
print("workers  sim_s      ctrl_cpu_s   µs/shard       µs/heartbeat   tick_µs      capacity shards/s")
var perShard: [Int: Double] = [:]
for count in options.workers {
    let (costs, simulatedMs, completed, reEnqueued) = simulate(workers: count, options: options)
    let seconds = micros(costs.total) / 1e6
    let capacity = Double(options.shards) / seconds
    perShard[count] = micros(costs.total) / Double(options.shards)
    print(String(format: "%-8d %-10.1f %-12.3f %-14.1f %-14.1f %-12.0f %-22.0f%@", count, Double(simulatedMs) / 1_000, seconds,
                 micros(costs.total) / Double(options.shards), micros(costs.heartbeats) / Double(max(1, costs.heartbeatCount)),
                 micros(costs.ticks) / Double(max(1, costs.tickCount)), capacity,
                 (completed ? (reEnqueued > 0 ? " (\(reEnqueued) re-enqueued)" : "") : " DID NOT COMPLETE") as NSString))
}
if let small = perShard[10], let large = perShard[100] {
    print(String(format: "controller CPU per shard, 100 vs 10 workers: %.2f× (target <= 1.5)", large / small))
}
