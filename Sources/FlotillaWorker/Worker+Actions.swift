import FlotillaCore
import FlotillaKafka
import FlotillaSources
import Foundation

/// The tasks the loop starts for the machine's actions: a shard's execution, and the worker's
/// commits (one at a time), each reporting back by event.
extension Worker {
    /// Runs one shard as execution `run` and hands the loop what it produced (nil when abandoned).
    func execute(_ shard: QueuedShard, run: String, _ runtime: WorkerRuntime, board: RunBoard) async {
        let abandoned: @Sendable () -> Bool = { board.isAbandoned(run) }
        let record = shard.record
        let startedAt = Timestamp.now()
        var logger = logger
        logger[metadataKey: LoggingKeys.shard] = "\(record.shard)"
        let ack: AckRecord
        var results = ResultEntries(job: options.job, shard: record.shard, attempt: record.attempt, run: run)
        do {
            let outcome = try await runtime.processor.process(record, run: run, isAbandoned: abandoned) { done in
                board.report(run: run, done: done)
            }
            results = outcome.results
            for id in outcome.oversized {
                logger.warning("result over the record limit", metadata: ["flotilla.id": "\(id)", "flotilla.limit": "\(runtime.config.kafka.maxMessageBytes)"])
            }
            if let directory = runtime.outputDirectory { try ShardFileWriter.write(results, directory: directory) }
            let errorSamples = results.errors.count
            ack = AckRecord(job: options.job, shard: record.shard, attempt: record.attempt, run: run, worker: options.workerID,
                            samples: results.count, errorSamples: errorSamples, status: .done,
                            errors: errorSamples == 0 ? nil : results.topErrors, startedAt: startedAt)
        } catch {
            if abandoned() {
                logger.info("shard abandoned")
                eventSink.yield(.finished(run: run, nil))
                return
            }
            logger.warning("shard failed", metadata: ["flotilla.error": "\(error)"])
            ack = AckRecord(job: options.job, shard: record.shard, attempt: record.attempt, run: run, worker: options.workerID,
                            samples: 0, status: .failed, error: error.message, startedAt: startedAt)
        }
        let finished = FinishedShard(partition: shard.partition, offset: shard.offset, results: results, ack: ack)
        eventSink.yield(.finished(run: run, finished))
    }


    /// Publishes a transaction of finished shards and tells the loop what was published.
    func publish(_ batch: [FinishedShard], _ runtime: WorkerRuntime) async {
        do {
            let published = try await publishIsolatingRejects(batch, runtime)
            eventSink.yield(.published(published))
            logger.debug("shards published", metadata: ["flotilla.shards": "\(published.map(\.ack.shard))",
                                                          "flotilla.samples": "\(published.reduce(0) { $0 + $1.results.count })"])
        } catch {
            eventSink.yield(.commitFailed(Self.commitError(error)))
        }
    }

    /// Publishes `batch`; when the broker rejects its records (too large, invalid), publishes its
    /// shards one by one and turns each rejected one into a failed ack, so that the controller
    /// charges that shard an attempt (and dead-letters it after maxAttempts) while the others
    /// are published. Returns what was published.
    private func publishIsolatingRejects(_ batch: [FinishedShard], _ runtime: WorkerRuntime) async throws -> [FinishedShard] {
        do {
            try await commitWithRetry("publish results") {
                // Asked on every try: a rebalance may have taken partitions away meanwhile.
                guard let offsets = await ask({ .offsetsWanted(batch, $0) }) else { throw CancellationError() }
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
            failed.results.removeAll()
            failed.ack.status = .failed
            failed.ack.samples = 0
            failed.ack.errorSamples = 0
            failed.ack.errors = nil
            failed.ack.error = "the broker rejected this shard's results: \(rejection.error)"
            return try await publishIsolatingRejects([failed], runtime)
        }
    }

    /// Commits a settle transaction, once, not retried: a settle only helps a broker resolve; a
    /// failure worth exiting for (fenced) surfaces on the next publish.
    func settle(asked: Bool, _ runtime: WorkerRuntime) async {
        let record = SettleRecord(job: options.job, worker: options.workerID, reason: asked ? "asked by the controller" : "idle")
        do {
            try await runtime.link.settle(record)
        } catch {
            logger.warning("settle transaction failed", metadata: ["flotilla.error": "\(error)"])
        }
        eventSink.yield(.settled)
    }

    /// Commits the offsets of released records (skipped, dead-lettered) outside a transaction.
    func commitOffsets(_ offsets: [TopicPartitionOffset], _ runtime: WorkerRuntime) async {
        do {
            try await commitWithRetry("commit offsets") { try await runtime.link.commitOffsets(offsets) }
            eventSink.yield(.offsetsCommitted)
        } catch {
            eventSink.yield(.commitFailed(Self.commitError(error)))
        }
    }

    private static func commitError(_ error: any Error) -> FlotillaError {
        error as? FlotillaError ?? FlotillaError(.kafka, "worker failed", underlying: error)
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
