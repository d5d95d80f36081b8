import FlotillaCore
import FlotillaKafka
import Foundation

extension Worker {
    /// Tails the acks and control topics: done shards and superseded attempts are skipped;
    /// commands addressed to this worker are carried out.
    func ledgerLoop(_ runtime: WorkerRuntime) async throws {
        while !isStopping {
            let records: [TopicRecord]
            do {
                // A command ends the wait at once and a stop interrupts it; acks (hints) are read
                // after it, so at least once a second.
                records = try await runtime.link.pollLedger(timeout: .seconds(1))
            } catch {
                throw FlotillaError(.kafka, "cannot read the job's acks and control topics", underlying: error)
            }
            for record in records {
                switch try? record.jobRecord(in: runtime.topics) {
                case .ack(let ack): runtime.ledger.apply(ack: ack)
                case .control(let control): runtime.ledger.apply(control: control)
                default: break
                }
            }
            let commands = runtime.ledger.takeCommands()
            let takes = commands.filter { $0.command == .take }
            await take(takes.filter { $0.reason != ControlRecord.warmStartReason }, express: true, runtime)
            await take(takes.filter { $0.reason == ControlRecord.warmStartReason }, express: false, runtime)
            for command in commands where command.command != .take { carryOut(command) }
            // Drop queued attempts that became stale while waiting.
            _ = machine.withLock { $0.dropStale(runtime.ledger.shouldSkip) }
            if !records.isEmpty { changed() }
        }
    }

    func carryOut(_ command: ControlRecord) {
        logger.info("control command", metadata: ["flotilla.command": "\(command.command.rawValue)", LoggingKeys.shard: "\(command.shard ?? "-")"])
        switch command.command {
        case .drain: drain()
        case .stop: stop(.finished("stopped by the controller"))
        case .cancel: stop(.cancelled)
        case .abandon:
            guard let shard = command.shard else { return }
            _ = machine.withLock { $0.abandon(shard: shard, attempt: command.attempt) }
            changed()
        case .settle:
            machine.withLock { $0.askSettle() }
            committerWake.signal()
        case .supersede, .scale, .take, .close: break
        }
    }

    /// The express lane (`express`: recovered shards, put first and allowed one slot beyond the
    /// rest) and the warm start (ordinary work, queued last): fetches the named shard records in
    /// one pass over the shards topic, in the order they were sent.
    func take(_ commands: [ControlRecord], express: Bool, _ runtime: WorkerRuntime) async {
        let positions = commands.compactMap { command in
            command.partition.flatMap { partition in command.offset.map { (partition: Int32(partition), offset: $0) } }
        }
        guard !positions.isEmpty else { return }
        var taken: [QueuedShard] = []
        for message in await runtime.link.fetchShardRecords(positions) {
            guard let record = try? message.decode(ShardRecord.self),
                  record.job == options.job, runtime.config.problem(with: record.source) == nil,
                  runtime.ledger.shouldSkip(record) == nil else { continue }
            taken.append(QueuedShard(record: record, partition: message.topicPartition, offset: message.offset, express: express))
        }
        let added = machine.withLock { $0.take(taken, express: express) }
        guard !added.isEmpty else { return }
        schedulerWake.signal()
        heartbeatWake.signal()  // the controller sees them queued here at once
        logger.info("took shards named by the controller", metadata: [
            "flotilla.shards": "\(added.map(\.record.shard))", "flotilla.reason": "\(commands.first?.reason ?? "-")",
        ])
    }

    /// Publishes a heartbeat every `faults.heartbeat`: progress, queue, rate, predictor pools.
    func heartbeatLoop(_ runtime: WorkerRuntime) async throws {
        var last = ContinuousClock.now
        while !isStopping {
            await sendHeartbeat(runtime, since: &last, final: false)
            await heartbeatWake.wait(upTo: runtime.config.faults.heartbeat)
        }
        await sendHeartbeat(runtime, since: &last, final: true)
    }

    private func sendHeartbeat(_ runtime: WorkerRuntime, since last: inout ContinuousClock.Instant, final: Bool) async {
        var predictors: [PredictorStatus] = []
        for stage in runtime.processor.stages {
            let pool = await stage.pool.state()
            predictors.append(PredictorStatus(stage: pool.stage, processes: pool.processes, busy: pool.busy, restarts: pool.restarts,
                                              devices: pool.devices.isEmpty ? nil : pool.devices))
        }
        let now = ContinuousClock.now
        let seconds = max(0.001, Double((now - last).components.seconds) + Double((now - last).components.attoseconds) / 1e18)
        last = now
        let cpuSeconds = ProcessUsage.cpuSeconds()
        let heartbeat = machine.withLock { machine in
            let report = machine.heartbeatReport()
            return HeartbeatRecord(
                job: options.job, worker: options.workerID, host: ProcessInfo.processInfo.hostName, pid: Int(getpid()),
                state: final ? .stopping : (machine.phase == .draining ? .draining : .running),
                inFlight: report.inFlight,
                queued: report.queued,
                samplesPerSecond: Double(report.samples) / seconds,
                predictors: predictors,
                partitions: machine.assigned.map { Int($0.partition) }.sorted(),
                committed: report.committed,
                positions: machine.partitionPositions,
                usage: WorkerUsage(cpuSeconds: cpuSeconds, samples: machine.samplesDone, shards: machine.shardsDone))
        }
        do {
            try runtime.link.send(heartbeat)
        } catch {
            logger.warning("cannot send heartbeat", metadata: ["flotilla.error": "\(error)"])
        }
    }
}
