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
/// The rules live in `WorkerMachine` (a value, tested alone); `WorkerLoop` owns it and is fed by
/// one event stream. The tasks around it only do I/O: the intake (group records → loop), the
/// ledger tail (acks and control → loop), the heartbeat, shard executions, and one commit at a time.
public final class Worker: Service {
    let options: WorkerOptions
    let logger: Logger
    /// The loop's one input: every fact the worker learns, and every question its tasks ask.
    let events: AsyncStream<WorkerEvent>
    let eventSink: AsyncStream<WorkerEvent>.Continuation
    /// Cut short the intake's and the ledger tail's blocked polls (set once connected): they wait
    /// up to a second for records, and a stop or drain should not wait that out.
    private let pollInterrupt = Mutex<(@Sendable () -> Void)?>(nil)
    /// How the run ended, once it has (`Service.run`).
    private let ended = Mutex<WorkerExit?>(nil)

    public init(options: WorkerOptions, logger: Logger) {
        self.options = options
        var logger = logger
        logger[metadataKey: LoggingKeys.job] = "\(options.job)"
        logger[metadataKey: LoggingKeys.worker] = "\(options.workerID)"
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: WorkerEvent.self)
    }

    /// Finish running shards, take no new ones, then return (SIGTERM, `drain` command).
    public func drain() {
        eventSink.yield(.drain)
        pollInterrupt.withLock { $0 }?()
    }

    /// Abandon everything and return as soon as possible.
    public func stop(_ reason: WorkerExit = .finished("stopped")) {
        eventSink.yield(.stop(reason))
        pollInterrupt.withLock { $0 }?()
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

    /// How the run ended, once `run()` returned.
    public var exit: WorkerExit? { ended.withLock { $0 } }

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
        pollInterrupt.withLock { $0 = runtime.link.interruptPolls }
        logger.info("worker started", metadata: [
            "flotilla.slots": "\(runtime.slots)", "flotilla.delivery": "\(runtime.link.transactional ? "exactly-once" : "at-least-once")",
        ])
        var loop = WorkerLoop(worker: self, runtime: runtime)
        await loop.run()
        // Without partitions there is nothing to hand over, and closing would wait out the join.
        await runtime.shutdown(leaveGroup: !loop.machine.assigned.isEmpty)
        logger.info("worker stopped", metadata: ["flotilla.shards": "\(loop.machine.shardsDone)"])
        if let failure = loop.failure { throw failure }
        return loop.machine.exit ?? .finished("done")
    }

    /// Asks the event loop; nil when the worker stops or the loop has ended.
    func ask<T: Sendable>(_ question: (Reply<T>) -> WorkerEvent) async -> T? {
        await withCheckedContinuation { reply in
            if case .terminated = eventSink.yield(question(reply)) { reply.resume(returning: nil) }
        }
    }
}

/// The broker refused records as they are: retrying the same ones cannot help.
struct RecordsRejected: Error {
    var error: KafkaError
}
