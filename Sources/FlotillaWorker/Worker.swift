import FlotillaCore
import FlotillaPredictor
import FlotillaSources
import Foundation
import Logging
import RdKafka
import Synchronization

/// `flotilla worker`: takes shards from the job's consumer group at its own pace, runs them through
/// the model stages, and publishes results, acks and offsets (atomically in exactly-once mode).
///
/// Five loops share one locked `WorkerState`: intake (Kafka → bounded queue, pausing partitions
/// when full), scheduler (queue → running shards, `slots` at a time), committer (finished shards →
/// Kafka), ledger (acks and control → skip lists and commands) and heartbeat.
public final class Worker: Sendable {
    let options: WorkerOptions
    let logger: Logger
    let state = Mutex(WorkerState())
    /// Wake the loops when what they wait for may have changed (see `changed()`).
    let intakeWake = Wakeup(), schedulerWake = Wakeup(), committerWake = Wakeup(), heartbeatWake = Wakeup()

    public init(options: WorkerOptions, logger: Logger) {
        self.options = options
        var logger = logger
        logger[metadataKey: LoggingKeys.job] = "\(options.job)"
        logger[metadataKey: LoggingKeys.worker] = "\(options.workerID)"
        self.logger = logger
    }

    /// Finish running shards, take no new ones, then return (SIGTERM, `drain` command).
    public func drain() {
        state.withLock { $0.draining = true }
        changed()
    }

    /// Abandon everything and return as soon as possible.
    public func stop(_ reason: WorkerExit = .finished("stopped")) {
        state.withLock { if $0.stopping == nil { $0.stopping = reason } }
        changed()
        heartbeatWake.signal()
    }

    /// The shared state changed (a shard queued, started, finished or published; a command):
    /// the intake, scheduler and committer look again.
    func changed() {
        intakeWake.signal()
        schedulerWake.signal()
        committerWake.signal()
    }

    public func run() async throws(FlotillaError) -> WorkerExit {
        var client = KafkaClientConfiguration(bootstrapServers: options.brokers, properties: options.kafkaProperties)
        client.clientID = "flotilla-worker-\(options.workerID)"
        let config: JobConfig
        let runtime: WorkerRuntime
        do throws(FlotillaError) {
            let manifest = try await ManifestLoader.load(job: options.job, prefix: options.topicPrefix, client: client, logger: logger)
            if let signer = try ManifestSignature.fromEnvironment(), let problem = signer.problem(with: manifest) {
                throw FlotillaError(.invalidConfiguration, "\(problem); refusing to run it")
            }
            config = manifest.config
            client.properties = config.kafka.properties.merging(options.kafkaProperties) { $1 }
            runtime = try await WorkerRuntime.start(options: options, config: config, client: client, logger: logger)
        } catch {
            await reportStartFailure(error, client: client)
            throw error
        }
        logger.info("worker started", metadata: [
            "flotilla.slots": "\(runtime.slots)", "flotilla.delivery": "\(runtime.publisher.transactional ? "exactly-once" : "at-least-once")",
        ])
        let exit: Result<WorkerExit, FlotillaError>
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await self.intakeLoop(runtime) }
                group.addTask { try await self.schedulerLoop(runtime) }
                group.addTask { try await self.committerLoop(runtime) }
                group.addTask { try await self.ledgerLoop(runtime) }
                group.addTask { try await self.heartbeatLoop(runtime) }
                try await group.waitForAll()
            }
            exit = .success(state.withLock { $0.stopping } ?? .finished("done"))
        } catch let error as FlotillaError {
            exit = .failure(error)
        } catch {
            exit = .failure(FlotillaError(.kafka, "worker failed", underlying: error))
        }
        state.withLock { if $0.stopping == nil { $0.stopping = .finished("failed") } }
        // Without partitions there is nothing to hand over, and closing would wait out the join.
        await runtime.shutdown(leaveGroup: !state.withLock { $0.assigned.isEmpty })
        logger.info("worker stopped", metadata: ["flotilla.shards": "\(state.withLock { $0.shardsDone })"])
        return try exit.get()
    }

    var isStopping: Bool { state.withLock { $0.stopping != nil } }

    /// Finished shards published in one transaction at most: one commit costs a few milliseconds.
    static let publishBatch = 16

    // MARK: intake

    private func intakeLoop(_ runtime: WorkerRuntime) async throws {
        let limit = runtime.slots + (options.prefetch ?? runtime.slots)
        var lastPoll = ContinuousClock.now
        while !isStopping {
            // Hold only the shards this worker can start soon: that is what lets faster workers take
            // more. A full worker does not poll, so records stay in Kafka (pausing partitions instead
            // makes the next fetch after resume wait most of a second). It still polls once a minute,
            // to serve rebalances and stay within max.poll.interval.
            // Finished shards waiting for the committer count too, beyond a batch's worth: what a
            // worker holds unpublished is what a rebalance makes another worker redo.
            let room = state.withLock { state in
                let unpublished = max(0, state.finished.count + state.publishing.count - Self.publishBatch)
                return state.draining ? 0 : limit - state.queue.count - state.running.count - unpublished
            }
            guard room > 0 || ContinuousClock.now - lastPoll > .seconds(60) else {
                await intakeWake.wait(upTo: .seconds(1))
                continue
            }
            let events: [ConsumerEvent]
            do {
                events = try await runtime.consumer.poll(maxEvents: max(1, room), timeout: .milliseconds(100))
            } catch {
                throw FlotillaError(.kafka, "fatal Kafka consumer error; exiting so a supervisor replaces this worker", underlying: error)
            }
            lastPoll = ContinuousClock.now
            for event in events { try await handle(event, runtime) }
            if !events.isEmpty { schedulerWake.signal() }
        }
    }

    private func handle(_ event: ConsumerEvent, _ runtime: WorkerRuntime) async throws {
        switch event {
        case .message(let message):
            let partition = message.topicPartition
            state.withLock { state in
                state.offsets.received(partition, message.offset)
                state.positions[partition] = max(state.positions[partition] ?? 0, message.offset + 1)
            }
            let record: ShardRecord
            do {
                record = try RecordCodec.shared.decode(ShardRecord.self, from: message.value)
                guard record.job == options.job else {
                    throw FlotillaError(.codec, "shard record of job '\(record.job)' in the topic of job '\(options.job)'")
                }
                if let problem = runtime.config.problem(with: record.source) { throw FlotillaError(.invalidInput, problem) }
            } catch {
                await runtime.deadLetter(message: message, reason: "\(error)", logger: logger)
                state.withLock { $0.offsets.finished(partition, message.offset) }
                return
            }
            let shard = QueuedShard(record: record, partition: partition, offset: message.offset)
            state.withLock { state in
                state.queue.append(shard)
            }
        case .assigned(let partitions):
            logger.info("partitions assigned", metadata: ["flotilla.partitions": "\(partitions.map(\.partition))"])
            state.withLock { $0.assigned.formUnion(partitions) }
        case .revoked(let partitions, let lost):
            logger.info("partitions revoked", metadata: ["flotilla.partitions": "\(partitions.map(\.partition))", "flotilla.lost": "\(lost)"])
            state.withLock { $0.revoke(partitions) }
        case .error(let error):
            logger.warning("Kafka consumer error", metadata: ["flotilla.error": "\(error)"])
        case .endOfPartition:
            break
        }
    }

    // MARK: scheduler

    private func schedulerLoop(_ runtime: WorkerRuntime) async throws {
        await withDiscardingTaskGroup { group in
            while true {
                let next = state.withLock { state -> QueuedShard?? in
                    if state.stopping != nil { return .some(nil) }
                    if state.draining && state.running.isEmpty && state.finished.isEmpty {
                        state.stopping = .finished("drained")
                        return .some(nil)
                    }
                    guard !state.draining, let next = state.queue.first else { return nil }
                    // An express (recovered) shard may use one slot beyond the rest: it should not wait for a slot.
                    guard state.running.count < runtime.slots + (next.express ? 1 : 0) else { return nil }
                    return state.queue.removeFirst()
                }
                switch next {
                case .some(nil):
                    // Drained or stopped: the other loops notice now rather than at their next timeout.
                    changed()
                    heartbeatWake.signal()
                    return
                case .some(.some(let shard)):
                    if holdsCopy(of: shard) {
                        // Its express copy runs now: once acked, this copy is skipped and its offset released.
                        state.withLock { $0.queue.append(shard) }
                        await schedulerWake.wait(upTo: .milliseconds(20))
                        continue
                    }
                    if let reason = runtime.ledger.shouldSkip(shard.record) {
                        logger.debug("shard skipped", metadata: [LoggingKeys.shard: "\(shard.record.shard)", "flotilla.reason": "\(reason)"])
                        state.withLock { $0.release(shard) }
                        intakeWake.signal()
                        continue
                    }
                    let run = UUID().uuidString.lowercased()
                    state.withLock { $0.running[run] = RunningShard(queued: shard, run: run, startedAt: Timestamp.now()) }
                    group.addTask { await self.execute(shard, run: run, runtime) }
                case .none:
                    await schedulerWake.wait(upTo: .seconds(1))
                }
            }
        }
    }

    /// Runs one shard and hands the outcome to the committer (or drops it when abandoned).
    private func execute(_ shard: QueuedShard, run: String, _ runtime: WorkerRuntime) async {
        let record = shard.record
        let startedAt = Timestamp.now()
        var logger = logger
        logger[metadataKey: LoggingKeys.shard] = "\(record.shard)"
        let abandoned: @Sendable () -> Bool = { [self] in isAbandoned(run) }
        let ack: AckRecord
        var results: [ResultRecord] = []
        do {
            let outcome = try await runtime.processor.process(record, run: run, isAbandoned: abandoned) { [self] done in
                recordProgress(run: run, done: done)
            }
            results = outcome.results
            var errorSamples = outcome.errorSamples
            let limit = runtime.config.kafka.maxMessageBytes
            for index in results.indices where runtime.config.outputs.results {
                guard let replacement = results[index].oversized(maxMessageBytes: limit) else { continue }
                logger.warning("result over the record limit", metadata: ["flotilla.id": "\(results[index].id)", "flotilla.limit": "\(limit)"])
                results[index] = replacement
                errorSamples += 1
            }
            if let directory = runtime.outputDirectory { try ShardFileWriter.write(results, shard: record.shard, run: run, directory: directory) }
            ack = AckRecord(job: options.job, shard: record.shard, attempt: record.attempt, run: run, worker: options.workerID,
                            samples: results.count, errorSamples: errorSamples, status: .done,
                            errors: errorSamples == 0 ? nil : ResultRecord.topErrors(results), startedAt: startedAt)
        } catch {
            if abandoned() {
                logger.info("shard abandoned")
                state.withLock { _ = $0.running.removeValue(forKey: run) }
                changed()
                return
            }
            logger.warning("shard failed", metadata: ["flotilla.error": "\(error)"])
            ack = AckRecord(job: options.job, shard: record.shard, attempt: record.attempt, run: run, worker: options.workerID,
                            samples: 0, status: .failed, error: error.message, startedAt: startedAt)
        }
        state.withLock { state in
            guard let running = state.running.removeValue(forKey: run), !running.abandoned else { return }
            state.finished.append(FinishedShard(partition: shard.partition, offset: shard.offset, results: results, ack: ack))
        }
        changed()
    }

    /// Whether another copy of the same attempt runs or waits to be published here.
    private func holdsCopy(of shard: QueuedShard) -> Bool {
        state.withLock { $0.isRunning(shard.record) || $0.isUnpublished(shard.record) }
    }

    private func isAbandoned(_ run: String) -> Bool {
        state.withLock { state in
            guard let running = state.running[run] else { return true }
            return running.abandoned || state.stopping != nil
        }
    }

    private func recordProgress(run: String, done: Int) {
        state.withLock { state in state.running[run]?.done = done }
    }

    // MARK: committer

    private func committerLoop(_ runtime: WorkerRuntime) async throws {
        var lastOffsetCommit = ContinuousClock.now
        while true {
            let (batch, stop) = state.withLock { state -> ([FinishedShard], Bool) in
                // Several small shards per transaction: one commit costs a few milliseconds.
                let batch = Array(state.finished.prefix(Self.publishBatch))
                state.finished.removeFirst(batch.count)
                state.publishing = batch
                return (batch, state.stopping != nil && state.finished.isEmpty)
            }
            if !batch.isEmpty {
                try await publish(batch, runtime)
            } else if ContinuousClock.now - lastOffsetCommit > .seconds(1) {
                let offsets = state.withLock { $0.offsets.commitOffsets(advance: false) }
                try await commitWithRetry("commit offsets") { try await runtime.publisher.commitOffsets(offsets, consumer: runtime.consumer) }
                state.withLock { _ = $0.offsets.commitOffsets(advance: true) }
                lastOffsetCommit = ContinuousClock.now
            }
            if stop { return }
            // Every second at least: the offsets of skipped records are committed on that beat.
            if batch.isEmpty { await committerWake.wait(upTo: .seconds(1)) }
        }
    }

    private func publish(_ batch: [FinishedShard], _ runtime: WorkerRuntime) async throws {
        let batch = try await publishIsolatingRejects(batch, runtime)
        let samples = batch.reduce(0) { $0 + $1.results.count }
        state.withLock { state in
            for shard in batch { state.offsets.finished(shard.partition, shard.offset) }
            _ = state.offsets.commitOffsets(advance: true)
            state.samplesSinceHeartbeat += samples
            state.shardsDone += batch.count
            state.samplesDone += samples
            state.publishing = []
            state.committed += batch.filter { $0.ack.status == .done }.map {
                CommittedShard(shard: $0.ack.shard, attempt: $0.ack.attempt, run: $0.ack.run, samples: $0.ack.samples,
                               errorSamples: $0.ack.errorSamples)
            }
        }
        intakeWake.signal()
        schedulerWake.signal()  // a copy waiting for this one to be published may now be skipped
        // Still waiting for a group assignment: work comes from the controller's warm start,
        // which hands out more as soon as a heartbeat shows these committed.
        if state.withLock({ $0.assigned.isEmpty }) { heartbeatWake.signal() }
        for shard in batch where shard.ack.status == .done { runtime.ledger.apply(ack: shard.ack) }
        logger.debug("shards published", metadata: ["flotilla.shards": "\(batch.map(\.ack.shard))", "flotilla.samples": "\(samples)"])
    }

    /// Publishes `batch`; when the broker rejects its records (too large, invalid), publishes its
    /// shards one by one and turns each rejected one into a failed ack, so that the controller
    /// charges that shard an attempt (and dead-letters it after maxAttempts) while the others
    /// are published. Returns what was published.
    private func publishIsolatingRejects(_ batch: [FinishedShard], _ runtime: WorkerRuntime) async throws -> [FinishedShard] {
        do {
            let offsets = state.withLock { $0.offsets.commitOffsets(assumingFinished: batch.map { ($0.partition, $0.offset) }, advance: false) }
            try await commitWithRetry("publish results") { try await runtime.publisher.publish(batch, offsets: offsets, consumer: runtime.consumer) }
            return batch
        } catch let rejection as RecordsRejected {
            guard batch.count == 1, var failed = batch.first else {
                var published: [FinishedShard] = []
                for shard in batch { published += try await publishIsolatingRejects([shard], runtime) }
                return published
            }
            guard failed.ack.status == .done else { throw rejection.error }  // a bare ack rejected: nothing smaller to send
            logger.error("the broker rejected a shard's results", metadata: [LoggingKeys.shard: "\(failed.ack.shard)", "flotilla.error": "\(rejection.error)"])
            failed.results = []
            failed.ack.status = .failed
            failed.ack.samples = 0
            failed.ack.errorSamples = 0
            failed.ack.errors = nil
            failed.ack.error = "the broker rejected this shard's results: \(rejection.error)"
            return try await publishIsolatingRejects([failed], runtime)
        }
    }

    /// Retries Kafka failures that may pass (the broker unreachable, paused or restarting) with
    /// a growing pause, for up to `outageLimit`: the worker rides out a broker outage with its
    /// shards instead of exiting, which would cost them an attempt. A fatal error (fenced) ends it.
    private func commitWithRetry(_ what: String, _ body: () async throws -> Void) async throws {
        var attempt = 0
        let started = ContinuousClock.now
        while true {
            do {
                return try await body()
            } catch let error as KafkaError {
                if error.rejectsRecords && !error.isFatal { throw RecordsRejected(error: error) }
                attempt += 1
                if error.isFatal || ContinuousClock.now - started > Self.outageLimit {
                    throw FlotillaError(.kafka, "\(what) failed\(error.isFatal ? " (fatal)" : " \(attempt) times"); exiting so a supervisor replaces this worker", underlying: error)
                }
                logger.warning("\(what) failed; retrying", metadata: ["flotilla.error": "\(error)", "flotilla.attempt": "\(attempt)"])
                try? await Task.sleep(for: .milliseconds(min(5_000, 200 * attempt)))
            }
        }
    }

    /// How long a publish is retried through a broker outage: librdkafka's own default delivery
    /// timeout, beyond which records already queued are failed anyway.
    static let outageLimit: Duration = .seconds(300)
}

/// The broker refused records as they are: retrying the same ones cannot help.
struct RecordsRejected: Error {
    var error: KafkaError
}

/// Metadata keys shared by every Flotilla log line.
public enum LoggingKeys {
    public static let job = "flotilla.job"
    public static let shard = "flotilla.shard"
    public static let worker = "flotilla.worker"
}
