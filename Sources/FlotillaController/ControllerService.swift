import FlotillaCore
import FlotillaHTTP
import Foundation
import Logging
import Prometheus
import RdKafka
import ServiceLifecycle
import Synchronization

/// Runs one job to its end: replays the job's topics into a `ShardLedger`, then tails them, ticks
/// the ledger's rules, publishes what they decide, keeps the fleet at its size through a
/// `PodBackend`, and on completion publishes the final manifest and stops the fleet.
///
/// It keeps nothing but what the topics hold, so it can be killed (even `kill -9`) and restarted
/// at any time: a restarted controller finds the same ledger and never re-enqueues a shard that
/// the acks topic says is done.
public final class ControllerService: Service {
    public let options: ControllerOptions
    /// The snapshot `/status` serves and the metrics are fed from.
    public let board: StatusBoard
    /// What `/metrics` renders: this controller's metrics, and whatever else the executable
    /// bootstrapped into the same registry.
    public let registry: PrometheusCollectorRegistry
    let metrics: ControllerMetrics
    let backend: any PodBackend
    let logger: Logger
    private let onListening: @Sendable (String) -> Void
    private let state = Mutex<(outcome: ControllerOutcome?, httpAddress: String?, producers: ProducerSlot?)>((nil, nil, nil))
    /// This process's identity in its heartbeats.
    let identity: ControllerHeartbeat
    /// Checks manifests when a manifest key is configured.
    let signer: ManifestSignature?

    /// `onListening` is called with `http://HOST:PORT` once the HTTP server listens. `registry`
    /// keeps the metrics (a fresh one by default; the executable passes the one it bootstrapped).
    public init(options: ControllerOptions, backend: any PodBackend, logger: Logger,
                registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry(),
                onListening: @escaping @Sendable (String) -> Void = { _ in }) {
        self.options = options
        self.registry = registry
        self.metrics = ControllerMetrics(job: options.job, factory: FlotillaMetricsFactory(registry: registry))
        self.onListening = onListening
        self.backend = backend
        self.board = StatusBoard(job: options.job)
        self.identity = ControllerHeartbeat(job: options.job, controller: UUID().uuidString.lowercased(),
                                            host: ProcessInfo.processInfo.hostName, pid: Int(getpid()),
                                            startedAt: Timestamp.now(), takeOver: options.takeOver ? true : nil)
        self.signer = options.signer
        var logger = logger
        logger[metadataKey: "flotilla.job"] = "\(options.job)"
        self.logger = logger
    }

    /// How the run ended, once it has.
    public var outcome: ControllerOutcome? { state.withLock { $0.outcome } }
    /// `http://HOST:PORT` once the HTTP server listens.
    public var httpAddress: String? { state.withLock { $0.httpAddress } }
    /// The producer HTTP actions publish with, while connected.
    var controlProducer: KafkaProducer? { state.withLock { $0.producers?.current } }

    /// `Service`: runs the job; the outcome is in `outcome`. A graceful shutdown (SIGTERM) stops
    /// the fleet and returns without finishing the job (a later controller carries on).
    public func run() async throws {
        let outcome = try await runJob(onListening: onListening)
        state.withLock { $0.outcome = outcome }
    }

    /// Runs the job to completion or cancellation. Returns nil when shut down gracefully first.
    /// With `options.http`, the HTTP server runs alongside and stops when the job ends.
    public func runJob(onListening: @escaping @Sendable (String) -> Void = { _ in }) async throws -> ControllerOutcome? {
        guard let settings = options.http else { return try await runConnected() }
        let server = operatorServer(settings) { address in
            self.state.withLock { $0.httpAddress = address }
            onListening(address)
        }
        if !settings.address.isLoopback {
            logger.warning("the HTTP server listens beyond this machine", metadata: [
                "flotilla.address": "\(settings.address)", "flotilla.actions": "\(settings.token == nil ? "disabled" : "need the token")",
            ])
        }
        return try await server.serving { try await runConnected() }
    }

    private func runConnected() async throws -> ControllerOutcome? {
        var client = KafkaClientConfiguration(bootstrapServers: options.brokers, properties: options.kafkaProperties)
        client.clientID = "flotilla-controller"
        let topics = TopicNames(prefix: options.topicPrefix, job: options.job)
        let connection: Connection
        do {
            var producerConfiguration = KafkaProducerConfiguration(client: client)
            producerConfiguration.linger = .milliseconds(1)
            connection = Connection(
                producers: try ProducerSlot(configuration: producerConfiguration, logger: logger),
                admin: try KafkaAdmin(configuration: client, logger: logger),
                reader: try JobTopicsReader(client: client, topics: topics, logger: logger),
                topics: topics)
        } catch {
            throw FlotillaError(.kafka, "cannot create Kafka clients for \(options.brokers)", underlying: error)
        }
        state.withLock { $0.producers = connection.producers }
        defer { state.withLock { $0.producers = nil } }
        var run: ControllerRun
        do {
            run = try await replay(connection)
        } catch {
            await connection.reader.close()
            throw error
        }
        let outcome: Result<ControllerOutcome?, any Error>
        do {
            outcome = .success(try await loop(connection, &run))
        } catch {
            outcome = .failure(error)
        }
        // The job is free for another controller at once, not after the worker timeout.
        sendHeartbeatIfDue(connection, &run, stopping: true)
        try? await connection.producer.flush(timeout: .seconds(2))
        await connection.reader.close()
        return try outcome.get()
    }
}

/// The Kafka clients of one run.
struct Connection: Sendable {
    let producers: ProducerSlot
    let admin: KafkaAdmin
    let reader: JobTopicsReader
    let topics: TopicNames

    /// The producer now (it is replaced after a fatal error).
    var producer: KafkaProducer { producers.current }
}

/// The mutable state of one run, owned by its loop.
struct ControllerRun: Sendable {
    var ledger: ShardLedger
    var manifest: JobManifest
    var fleet: FleetPlanner
    /// When the autoscaler looks next (epoch ms).
    var nextAutoscale: Int64 = 0
    /// The fleet's speed from the ledger's done count: `/status`'s rate and ETA, and the
    /// autoscaler's measure (fed at the start of every tick).
    var rate = RateWindow()
    /// Other jobs on `<p>.jobs`, by id, from their latest manifests (the dashboard's picker).
    var otherJobs: [String: JobListing] = [:]
    var cancelled: String?
    /// The largest send-to-apply delay of heartbeats since the last status snapshot (ms).
    var heartbeatLagMs: Int64 = 0
    /// Where the committed read of each acks partition last reached its end (the last stable
    /// offset then) and since when it has been there, and when to look for a transaction holding it next.
    var acksEnds: [TopicPartition: (offset: Int64, since: Int64)] = [:]
    var nextHeldAcksCheck: Int64 = 0
    var nextHeldAcksWalk: Int64 = 0
    var heldAcksLooks = 0
    /// What was found holding the acks topic, for `/status` and progress lines; cleared once
    /// every reported commit is readable.
    var heldAcks: String?
    /// What the job costs this controller, for the summary.
    var cost = ControllerCostMeter()
    /// Dead letters for undecodable shard records, sent at the next tick.
    var undecodable: [(key: String, letter: DeadLetterRecord)] = []
    /// When this controller's next own heartbeat is due (epoch ms).
    var nextBeat: Int64 = 0
    /// Another controller that now runs the job (it took over, or is older and still alive).
    var otherController: (beat: ControllerHeartbeat, tookOver: Bool)?
}

extension ControllerService {
    /// Waits for the manifest, then reads every topic to its end, rebuilding the ledger.
    func replay(_ connection: Connection) async throws -> ControllerRun {
        board.update { $0.state = "replaying" }
        let reader = connection.reader
        let notFound = FlotillaError(.invalidInput, "job '\(options.job)' not found on \(connection.topics.jobs) at \(options.brokers); submit it first (flotilla submit JOB.yaml --brokers \(options.brokers))")
        // A submitted job's manifest is in the topic before `submit` returns: an unknown job is
        // answered as soon as the jobs topic is read to its end, not after a timeout.
        let jobsPartitions = try await assignJobsTopic(connection, notFound: notFound)
        var manifest: JobManifest?
        var jobsEnded: Set<TopicPartition> = []
        let deadline = ContinuousClock.now + options.manifestTimeout
        while manifest == nil {
            if ContinuousClock.now >= deadline || jobsPartitions.isSubset(of: jobsEnded) { throw notFound }
            for event in try await reader.poll(timeout: .milliseconds(100)) {
                switch event {
                case .message(let message):
                    guard message.keyString == options.job,
                          let record = try? RecordCodec.shared.decode(JobManifest.self, from: message.value) else { continue }
                    manifest = record
                case .endOfPartition(let partition, _):
                    jobsEnded.insert(partition)
                default:
                    break
                }
            }
        }
        guard let manifest else { throw FlotillaError(.internal, "manifest vanished") }
        if let problem = signer?.problem(with: manifest) {
            throw FlotillaError(.invalidConfiguration, "\(problem); refusing to run it")
        }
        try await createTopics(connection, config: manifest.config)
        let settings = LedgerSettings(config: manifest.config)
        try await checkNoOtherController(connection, settings: settings)
        var run = ControllerRun(
            ledger: ShardLedger(job: options.job, settings: settings),
            manifest: manifest,
            fleet: FleetPlanner(config: manifest.config.workers, requested: options.workers))
        run.ledger.apply(manifest: manifest)
        run.ledger.watchingSince = identity.startedAt
        if [.submitted, .running, .failed].contains(manifest.status) {
            // Workers start now, so their start-up (process, Kafka clients, group join) overlaps the replay.
            let early = try await maintainFleet(&run, connection, now: Timestamp.now())
            assert(early.isEmpty, "a fleet that never ran has no exits to report")
        }
        let partitions = try await reader.assignAll(admin: connection.admin, timeout: options.manifestTimeout)
        var ended: Set<TopicPartition> = []
        var records = 0
        let started = ContinuousClock.now
        let startedAt = Timestamp.now()
        let heartbeats = Set(partitions.filter { $0.topic == connection.topics.heartbeats })
        var restEndedAt: ContinuousClock.Instant?
        while !partitions.isSubset(of: ended) {
            // Heartbeats a live fleet keeps sending are not waited for long: one read after the rest
            // ended (the end-of-partition event waited for a lull, ~1 s per start, measured), and the
            // tail applies later ones; only fresh heartbeats matter to the rules anyway.
            if let restEndedAt, ContinuousClock.now - restEndedAt > .milliseconds(100) { break }
            for event in try await reader.poll(timeout: .milliseconds(100)) {
                switch event {
                case .message(let message):
                    records += 1
                    apply(message, to: &run, replaying: true)
                    // A heartbeat sent after the replay began: everything before it was read.
                    if message.topic == connection.topics.heartbeats, (message.timestamp ?? 0) >= startedAt {
                        ended.insert(message.topicPartition)
                    }
                case .endOfPartition(let partition, let offset):
                    ended.insert(partition)
                    if partition.topic == connection.topics.acks { run.reachedAcksEnd(partition, offset) }
                default:
                    break
                }
            }
            if restEndedAt == nil, partitions.subtracting(heartbeats).isSubset(of: ended) { restEndedAt = .now }
        }
        logger.info("replayed the job's topics", metadata: [
            "flotilla.records": "\(records)", "flotilla.seconds": "\((ContinuousClock.now - started).components.seconds)",
            "flotilla.done": "\(run.ledger.summary(now: Timestamp.now()).done)",
        ])
        return run
    }

    /// `outputs.directory` exactly once (see `OutputDirectory.settle`).
    func settleOutputFile(of ack: AckRecord, in directory: OutputDirectory, winner: String?) {
        do {
            try directory.settle(shard: ack.shard, run: ack.run, winner: winner)
        } catch {
            // A folder this controller cannot see, or a file gone: the shard's file is missing.
            logger.error("cannot move a shard's output file into place", metadata: ["flotilla.shard": "\(ack.shard)", "flotilla.error": "\(error)"])
        }
    }

    /// The shared jobs topic; its absence means no job was ever submitted with this prefix.
    private func assignJobsTopic(_ connection: Connection, notFound: FlotillaError) async throws -> Set<TopicPartition> {
        let result: Result<Set<TopicPartition>, FlotillaError>
        do {
            result = .success(try await connection.reader.assignAll(admin: connection.admin, only: [connection.topics.jobs], timeout: .zero))
        } catch {
            result = .failure(error.code == .invalidInput ? notFound : error)
        }
        return try result.get()
    }

    /// The per-job topics, when `flotilla submit` has not created them (harmless when it has).
    func createTopics(_ connection: Connection, config: JobConfig) async throws {
        let names = connection.topics
        let specs = names.perJob.map { topic in
            TopicSpecification(name: topic, partitions: Int32(names.partitions(of: topic, shardPartitions: config.shardPartitions, resultPartitions: config.resultPartitions)),
                               replicationFactor: Int32(config.kafka.replicationFactor ?? -1))
        }
        do {
            try await connection.admin.createTopics(specs)
        } catch {
            throw FlotillaError(.kafka, "cannot create the job's topics", underlying: error)
        }
    }

    /// Applies one record of any of the job's topics.
    func apply(_ message: KafkaMessage, to run: inout ControllerRun, replaying: Bool) {
        let topics = TopicNames(prefix: options.topicPrefix, job: options.job)
        let codec = RecordCodec.shared
        let now = Timestamp.now()
        do {
            switch message.topic {
            case topics.jobs:
                guard message.keyString == options.job else {
                    // Another job: listed for the dashboard's picker; a record that does not decode is not ours to judge.
                    if let other = try? codec.decode(JobManifest.self, from: message.value) { run.otherJobs[other.config.job] = JobListing(other) }
                    return
                }
                let manifest = try codec.decode(JobManifest.self, from: message.value)
                if let problem = signer?.problem(with: manifest) {
                    logger.error("ignoring a manifest update", metadata: ["flotilla.error": "\(problem)"])
                    return
                }
                run.manifest = manifest
                if manifest.status == .cancelled { run.cancelled = run.cancelled ?? "the job's manifest says cancelled" }
            case topics.shards:
                do {
                    let record = try codec.decode(ShardRecord.self, from: message.value)
                    if let problem = run.manifest.config.problem(with: record.source) { throw FlotillaError(.invalidInput, problem) }
                    run.ledger.apply(shard: record, partition: Int(message.partition), offset: message.offset,
                                     receivedAt: replaying ? nil : now)
                } catch {
                    if let shard = message.keyString, !shard.isEmpty {
                        run.ledger.applyUndecodableShard(shard, reason: "\(error)")
                    }
                    // Dead-lettered here, not only by a worker that receives it: with the warm
                    // start a job can end before any worker reads its partitions (a duplicate
                    // letter for the same key counts once).
                    run.undecodable.append((message.keyString ?? "unknown", DeadLetterRecord(
                        job: options.job, reason: "\(error)", raw: message.value, topic: message.topic,
                        partition: Int(message.partition), offset: message.offset, from: "controller")))
                    throw error
                }
            case topics.control:
                let control = try codec.decode(ControlRecord.self, from: message.value)
                run.ledger.apply(control: control)
                switch control.command {
                case .scale where control.target == ControlRecord.controller:
                    run.fleet.scale(to: control.workers)  // nil: back to the autoscaler
                case .close where control.target == ControlRecord.controller:
                    run.ledger.close(at: min(control.time, now))
                    if !replaying { logger.info("job closed: it ends once every shard published so far is done") }
                case .cancel:
                    run.cancelled = run.cancelled ?? (control.reason ?? "cancelled")
                default:
                    break
                }
            case topics.acks where message.isSettle:
                break
            case topics.acks:
                let ack = try codec.decode(AckRecord.self, from: message.value)
                run.ledger.apply(ack: ack)
                if ack.status == .done, let directory = run.manifest.config.outputs.directory {
                    settleOutputFile(of: ack, in: OutputDirectory(directory), winner: run.ledger.winningRun(of: ack.shard))
                }
            case topics.heartbeats where message.keyString == ControllerHeartbeat.key:
                apply(try codec.decode(ControllerHeartbeat.self, from: message.value), to: &run, replaying: replaying, now: now)
            case topics.heartbeats:
                let heartbeat = try codec.decode(HeartbeatRecord.self, from: message.value)
                // Replayed heartbeats count from when they were sent, so a long-dead worker is lost at once.
                run.ledger.apply(heartbeat: heartbeat, receivedAt: replaying ? min(heartbeat.time, now) : now)
                if !replaying {
                    run.heartbeatLagMs = max(run.heartbeatLagMs, now - heartbeat.time)
                    run.cost.heartbeat(lagMs: now - heartbeat.time)
                    if let failure = heartbeat.failure {
                        logger.error("worker cannot start", metadata: ["flotilla.worker": "\(heartbeat.worker)", "flotilla.error": "\(failure.message)"])
                        run.fleet.failed(heartbeat.worker, failure, now: now)
                    } else if heartbeat.state == .running {
                        run.fleet.running()
                        if !heartbeat.inFlight.isEmpty || !(heartbeat.committed ?? []).isEmpty {
                            run.fleet.heardWorking(from: heartbeat.worker, now: min(heartbeat.time, now))
                        }
                    }
                }
            case topics.dlq:
                run.ledger.apply(deadLetter: try codec.decode(DeadLetterRecord.self, from: message.value))
            default:
                break
            }
        } catch {
            logger.warning("skipping a record that cannot be decoded", metadata: [
                "flotilla.topic": "\(message.topic)", "flotilla.offset": "\(message.offset)", "flotilla.error": "\(error)",
            ])
        }
    }
}
