import FlotillaCore
import FlotillaKafka
import FlotillaPredictor
import FlotillaSources
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `flotilla worker`: takes shards from the job's consumer group at its own pace, runs them through
/// the model stages, and publishes results, acks and offsets (atomically in exactly-once mode).
///
/// The rules live in `WorkerMachine` (a value, tested alone); this shell feeds it and carries its
/// decisions out with five loops: intake (Kafka → bounded queue), scheduler (queue → running
/// shards, `slots` at a time), committer (finished shards → Kafka), ledger (acks and control →
/// skip lists and commands) and heartbeat. Each loop waits on a `Wakeup`, never on a timer tick.
public final class Worker: Service {
    let options: WorkerOptions
    let logger: Logger
    /// Sized for real once the stages are known (`configure`).
    let machine = Mutex(WorkerMachine(slots: 1, holdLimit: 1))
    /// How the run ended, once it has (`Service.run`).
    private let ended = Mutex<WorkerExit?>(nil)
    /// Wake the loops when what they wait for may have changed (see `changed()`).
    let intakeWake = Wakeup(), schedulerWake = Wakeup(), committerWake = Wakeup(), heartbeatWake = Wakeup()
    /// Cut short the intake's and the ledger's blocked polls (set by `run`): they wait up to a
    /// second for records, and a stop or drain should not wait that out.
    private let pollInterrupts = Mutex<[@Sendable () -> Void]>([])

    public init(options: WorkerOptions, logger: Logger) {
        self.options = options
        var logger = logger
        logger[metadataKey: LoggingKeys.job] = "\(options.job)"
        logger[metadataKey: LoggingKeys.worker] = "\(options.workerID)"
        self.logger = logger
    }

    /// Finish running shards, take no new ones, then return (SIGTERM, `drain` command).
    public func drain() {
        machine.withLock { $0.drain() }
        changed()
        for interrupt in pollInterrupts.withLock({ $0 }) { interrupt() }
    }

    /// Abandon everything and return as soon as possible.
    public func stop(_ reason: WorkerExit = .finished("stopped")) {
        machine.withLock { $0.stop(reason) }
        changed()
        heartbeatWake.signal()
        for interrupt in pollInterrupts.withLock({ $0 }) { interrupt() }
    }

    /// `Service`: runs until done (see `runUntilDone`); a graceful shutdown of its group (SIGTERM,
    /// SIGINT) drains it. How it ended is in `exit`.
    public func run() async throws {
        let exit = try await withGracefulShutdownHandler {
            try await runUntilDone()
        } onGracefulShutdown: {
            self.drain()
        }
        ended.withLock { $0 = exit }
    }

    /// The shared state changed (a shard queued, started, finished or published; a command):
    /// the intake, scheduler and committer look again.
    func changed() {
        intakeWake.signal()
        schedulerWake.signal()
        committerWake.signal()
    }

    /// Runs the worker until the job ends, the controller stops it, it is drained, or a fatal
    /// error; returns how it ended.
    public func runUntilDone() async throws(FlotillaError) -> WorkerExit {
        var connection = BrokerConnection(bootstrapServers: options.brokers, properties: options.kafkaProperties,
                                          clientID: "flotilla-worker-\(options.workerID)")
        let runtime: WorkerRuntime
        do throws(FlotillaError) {
            let manifest = try await ManifestCollector.load(TopicNames(prefix: options.topicPrefix, job: options.job), connection: connection, logger: logger)
            if let signer = try ManifestSignature.fromEnvironment(), let problem = signer.problem(with: manifest) {
                throw FlotillaError(.invalidConfiguration, "\(problem); refusing to run it")
            }
            connection = connection.adding(jobProperties: manifest.config.kafka.properties)
            runtime = try await WorkerRuntime.start(options: options, config: manifest.config, connection: connection, logger: logger)
        } catch {
            await reportStartFailure(error, connection: connection)
            throw error
        }
        machine.withLock { $0.configure(slots: runtime.slots, holdLimit: runtime.slots + (options.prefetch ?? runtime.slots)) }
        pollInterrupts.withLock { $0 = [runtime.link.interruptPolls] }
        logger.info("worker started", metadata: [
            "flotilla.slots": "\(runtime.slots)", "flotilla.delivery": "\(runtime.link.transactional ? "exactly-once" : "at-least-once")",
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
            exit = .success(machine.withLock { $0.exit } ?? .finished("done"))
        } catch let error as FlotillaError {
            exit = .failure(error)
        } catch {
            exit = .failure(FlotillaError(.kafka, "worker failed", underlying: error))
        }
        machine.withLock { $0.stop(.finished("failed")) }
        // Without partitions there is nothing to hand over, and closing would wait out the join.
        await runtime.shutdown(leaveGroup: !machine.withLock { $0.assigned.isEmpty })
        logger.info("worker stopped", metadata: ["flotilla.shards": "\(machine.withLock { $0.shardsDone })"])
        return try exit.get()
    }

    var isStopping: Bool { machine.withLock { $0.isStopping } }

    /// How the run ended, once `run()` returned.
    public var exit: WorkerExit? { ended.withLock { $0 } }

    // MARK: intake

    private func intakeLoop(_ runtime: WorkerRuntime) async throws {
        var lastPoll = ContinuousClock.now
        while !isStopping {
            // Hold only the shards this worker can start soon: that is what lets faster workers take
            // more. A full worker does not poll, so records stay in Kafka (pausing partitions instead
            // makes the next fetch after resume wait most of a second). It still polls once a minute,
            // to serve rebalances and stay within max.poll.interval.
            let room = machine.withLock { $0.room }
            guard room > 0 || ContinuousClock.now - lastPoll > .seconds(60) else {
                await intakeWake.wait(upTo: .seconds(1))
                continue
            }
            let events: [ShardEvent]
            do {
                // Records and rebalances end the wait at once, a stop interrupts it: the timeout
                // only paces an idle worker's wake-ups (at 100 ms they were most of its idle CPU).
                events = try await runtime.link.pollShards(maxEvents: max(1, room), timeout: .seconds(1))
            } catch {
                throw FlotillaError(.kafka, "fatal Kafka consumer error; exiting so a supervisor replaces this worker", underlying: error)
            }
            lastPoll = ContinuousClock.now
            for event in events { try await handle(event, runtime) }
            if !events.isEmpty { schedulerWake.signal() }
        }
    }

    private func handle(_ event: ShardEvent, _ runtime: WorkerRuntime) async throws {
        switch event {
        case .record(let message):
            let partition = message.topicPartition
            machine.withLock { $0.received(partition, offset: message.offset) }
            let record: ShardRecord
            do {
                record = try message.decode(ShardRecord.self)
                guard record.job == options.job else {
                    throw FlotillaError(.codec, "shard record of job '\(record.job)' in the topic of job '\(options.job)'")
                }
                if let problem = runtime.config.problem(with: record.source) { throw FlotillaError(.invalidInput, problem) }
            } catch {
                await runtime.link.deadLetter(message, reason: "\(error)")
                machine.withLock { $0.release(partition, offset: message.offset) }
                return
            }
            machine.withLock { $0.enqueue(QueuedShard(record: record, partition: partition, offset: message.offset)) }
        case .assigned(let partitions):
            logger.info("partitions assigned", metadata: ["flotilla.partitions": "\(partitions.map(\.partition))"])
            machine.withLock { $0.assign(partitions) }
            // At once, not at the next beat: the controller warm-starts only while no worker owns
            // partitions, and each beat it does not know of this assignment risks a take that
            // races this worker's own group copy.
            heartbeatWake.signal()
        case .revoked(let partitions, let lost):
            logger.info("partitions revoked", metadata: ["flotilla.partitions": "\(partitions.map(\.partition))", "flotilla.lost": "\(lost)"])
            machine.withLock { $0.revoke(partitions) }
            changed()
        case .error(let error):
            logger.warning("Kafka consumer error", metadata: ["flotilla.error": "\(error)"])
        }
    }

    // MARK: scheduler

    private func schedulerLoop(_ runtime: WorkerRuntime) async throws {
        await withDiscardingTaskGroup { group in
            while true {
                let next = machine.withLock { machine in
                    machine.next(skipReason: runtime.ledger.shouldSkip, newRun: { UUID().uuidString.lowercased() }, now: Timestamp.now())
                }
                switch next {
                case .stop:
                    // Drained or stopped: the other loops notice now rather than at their next timeout.
                    changed()
                    heartbeatWake.signal()
                    return
                case .skip(let shard, let reason):
                    logger.debug("shard skipped", metadata: [LoggingKeys.shard: "\(shard.record.shard)", "flotilla.reason": "\(reason)"])
                    intakeWake.signal()
                case .start(let shard, let run):
                    group.addTask { await self.execute(shard, run: run, runtime) }
                case .wait:
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
            for index in ResultRecord.oversizedIndices(results, maxMessageBytes: limit) where runtime.config.outputs.results {
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
                machine.withLock { $0.finish(run: run, nil) }
                changed()
                return
            }
            logger.warning("shard failed", metadata: ["flotilla.error": "\(error)"])
            ack = AckRecord(job: options.job, shard: record.shard, attempt: record.attempt, run: run, worker: options.workerID,
                            samples: 0, status: .failed, error: error.message, startedAt: startedAt)
        }
        let finished = FinishedShard(partition: shard.partition, offset: shard.offset, results: results, ack: ack)
        machine.withLock { $0.finish(run: run, finished) }
        changed()
    }

    private func isAbandoned(_ run: String) -> Bool {
        machine.withLock { $0.isAbandoned(run) }
    }

    private func recordProgress(run: String, done: Int) {
        machine.withLock { $0.progress(run: run, done: done) }
    }

    // MARK: committer

    private func committerLoop(_ runtime: WorkerRuntime) async throws {
        var lastOffsetCommit = ContinuousClock.now
        while true {
            let (batch, due, done) = machine.withLock { ($0.nextPublish(at: .now), $0.publishDue, $0.committerIsDone) }
            if let batch {
                try await publish(batch, runtime)
            } else if let asked = machine.withLock({ $0.wantsSettle ? $0.settleAsked : nil }) {
                let record = SettleRecord(job: options.job, worker: options.workerID, reason: asked ? "asked by the controller" : "idle")
                // Once, not retried: a settle only helps a broker resolve; a failure worth exiting
                // for (fenced) surfaces on the next publish.
                do {
                    try await runtime.link.settle(record)
                } catch {
                    logger.warning("settle transaction failed", metadata: ["flotilla.error": "\(error)"])
                }
                machine.withLock { $0.settled() }
            } else if ContinuousClock.now - lastOffsetCommit > .seconds(1) {
                let offsets = machine.withLock { $0.pendingOffsets() }
                try await commitWithRetry("commit offsets") { try await runtime.link.commitOffsets(offsets) }
                machine.withLock { $0.offsetsCommitted() }
                lastOffsetCommit = ContinuousClock.now
            }
            if done { return }
            // Every second at least: the offsets of skipped records are committed on that beat.
            if batch == nil { await committerWake.wait(upTo: min(.seconds(1), due.map { $0 - .now } ?? .seconds(1))) }
        }
    }

    private func publish(_ batch: [FinishedShard], _ runtime: WorkerRuntime) async throws {
        let published = try await publishIsolatingRejects(batch, runtime)
        let noPartitions = machine.withLock { machine in
            machine.published(published)
            return machine.assigned.isEmpty
        }
        intakeWake.signal()
        schedulerWake.signal()  // a copy held for this one may now be skipped
        // Still waiting for a group assignment: work comes from the controller's warm start,
        // which hands out more as soon as a heartbeat shows these committed.
        if noPartitions { heartbeatWake.signal() }
        for shard in published where shard.ack.status == .done { runtime.ledger.apply(ack: shard.ack) }
        logger.debug("shards published", metadata: ["flotilla.shards": "\(published.map(\.ack.shard))",
                                                      "flotilla.samples": "\(published.reduce(0) { $0 + $1.results.count })"])
    }

    /// Publishes `batch`; when the broker rejects its records (too large, invalid), publishes its
    /// shards one by one and turns each rejected one into a failed ack, so that the controller
    /// charges that shard an attempt (and dead-letters it after maxAttempts) while the others
    /// are published. Returns what was published.
    private func publishIsolatingRejects(_ batch: [FinishedShard], _ runtime: WorkerRuntime) async throws -> [FinishedShard] {
        do {
            try await commitWithRetry("publish results") {
                // Asked again on every try: a rebalance may have taken partitions away meanwhile.
                let offsets = machine.withLock { $0.offsetsToCommit(assumingPublished: batch) }
                try await runtime.link.publish(batch, offsets: offsets)
            }
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

    /// Rides out a broker outage with its shards (`OutageRetry`) instead of exiting, which would
    /// cost them an attempt; records the broker refuses as they are come out as `RecordsRejected`.
    private func commitWithRetry(_ what: String, _ body: () async throws -> Void) async throws {
        try await OutageRetry.run(pauseStep: .milliseconds(200), retrying: { error, attempt in
            logger.warning("\(what) failed; retrying", metadata: ["flotilla.error": "\(error)", "flotilla.attempt": "\(attempt)"])
        }, giveUp: { error, attempt in
            FlotillaError(.kafka, "\(what) failed\(error.isFatal ? " (fatal)" : " \(attempt) times"); exiting so a supervisor replaces this worker", underlying: error)
        }) {
            do {
                try await body()
            } catch let error as KafkaError where error.rejectsRecords && !error.isFatal {
                throw RecordsRejected(error: error)
            }
        }
    }
}

/// The broker refused records as they are: retrying the same ones cannot help.
struct RecordsRejected: Error {
    var error: KafkaError
}
