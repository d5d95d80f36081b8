import FlotillaCore
import FlotillaKafka
import Foundation
import RdKafka

extension Worker {
    /// Tails the acks and control topics: done shards and superseded attempts are skipped;
    /// commands addressed to this worker are carried out.
    func ledgerLoop(_ runtime: WorkerRuntime) async throws {
        while !isStopping {
            let messages: [KafkaMessage]
            do {
                messages = try await runtime.ledgerReader.poll(timeout: .milliseconds(100))
            } catch {
                throw FlotillaError(.kafka, "cannot read the job's acks and control topics", underlying: error)
            }
            for message in messages {
                if message.topic == runtime.topics.acks, let ack = try? RecordCodec.shared.decode(AckRecord.self, from: message.value) {
                    runtime.ledger.apply(ack: ack)
                } else if message.topic == runtime.topics.control, let control = try? RecordCodec.shared.decode(ControlRecord.self, from: message.value) {
                    runtime.ledger.apply(control: control)
                }
            }
            let commands = runtime.ledger.takeCommands()
            let takes = commands.filter { $0.command == .take }
            await take(takes.filter { $0.reason != ControlRecord.warmStartReason }, express: true, runtime)
            await take(takes.filter { $0.reason == ControlRecord.warmStartReason }, express: false, runtime)
            for command in commands where command.command != .take { carryOut(command) }
            // Drop queued attempts that became stale while waiting.
            state.withLock { state in
                let stale = state.queue.filter { runtime.ledger.shouldSkip($0.record) != nil }
                guard !stale.isEmpty else { return }
                state.queue.removeAll { runtime.ledger.shouldSkip($0.record) != nil }
                for shard in stale { state.release(shard) }
            }
            if !messages.isEmpty { changed() }
        }
    }

    func carryOut(_ command: ControlRecord) {
        logger.info("control command", metadata: ["flotilla.command": "\(command.command.rawValue)", LoggingKeys.shard: "\(command.shard ?? "-")"])
        switch command.command {
        case .drain: drain()
        case .stop: stop(.finished("stopped by the controller"))
        case .cancel: stop(.cancelled)
        case .abandon:
            state.withLock { state in
                for (run, shard) in state.running where shard.queued.record.shard == command.shard
                    && (command.attempt == nil || shard.queued.record.attempt == command.attempt) {
                    state.running[run]!.abandoned = true
                    state.release(shard.queued)
                }
            }
            changed()
        case .supersede, .scale, .take: break
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
        for message in await runtime.fetchShardRecords(positions) {
            guard let record = try? RecordCodec.shared.decode(ShardRecord.self, from: message.value),
                  record.job == options.job, runtime.config.problem(with: record.source) == nil,
                  runtime.ledger.shouldSkip(record) == nil else { continue }
            taken.append(QueuedShard(record: record, partition: message.topicPartition, offset: message.offset, express: express))
        }
        let added = state.withLock { state in
            let fresh = taken.filter { !state.isQueued($0.record) && !state.isRunning($0.record) }
            if express { state.queue.insert(contentsOf: fresh, at: 0) } else { state.queue.append(contentsOf: fresh) }
            return fresh
        }
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
            predictors.append(PredictorStatus(stage: pool.stage, processes: pool.processes, busy: pool.busy, restarts: pool.restarts))
        }
        let now = ContinuousClock.now
        let seconds = max(0.001, Double((now - last).components.seconds) + Double((now - last).components.attoseconds) / 1e18)
        last = now
        let cpuSeconds = ProcessUsage.cpuSeconds()
        let heartbeat = state.withLock { state in
            defer {
                state.samplesSinceHeartbeat = 0
                state.committed = []
            }
            // Finished shards stay in flight until their transaction commits: a shard the
            // controller sees neither running nor committed would look like waiting work.
            let running = state.running.values.filter { !$0.abandoned }.map {
                InFlightShard(shard: $0.queued.record.shard, attempt: $0.queued.record.attempt, run: $0.run, done: $0.done,
                              total: $0.queued.record.samples, startedAt: $0.startedAt)
            }
            let unpublished = (state.publishing + state.finished).map {
                InFlightShard(shard: $0.ack.shard, attempt: $0.ack.attempt, run: $0.ack.run, done: $0.ack.samples,
                              total: $0.ack.samples, startedAt: $0.ack.startedAt)
            }
            return HeartbeatRecord(
                job: options.job, worker: options.workerID, host: ProcessInfo.processInfo.hostName, pid: Int(getpid()),
                state: final ? .stopping : (state.draining ? .draining : .running),
                inFlight: running + unpublished,
                queued: state.queue.map(\.record.shard),
                samplesPerSecond: Double(state.samplesSinceHeartbeat) / seconds,
                predictors: predictors,
                partitions: state.assigned.map { Int($0.partition) }.sorted(),
                committed: state.committed,
                positions: state.positions.map { PartitionPosition(partition: Int($0.key.partition), next: $0.value) }
                    .sorted { $0.partition < $1.partition },
                usage: WorkerUsage(cpuSeconds: cpuSeconds, samples: state.samplesDone, shards: state.shardsDone))
        }
        let message = OutgoingMessage.record(heartbeat, topic: runtime.topics.heartbeats, key: options.workerID)
        do {
            try runtime.plainProducer.enqueue(message)
        } catch {
            logger.warning("cannot send heartbeat", metadata: ["flotilla.error": "\(error)"])
        }
    }
}
