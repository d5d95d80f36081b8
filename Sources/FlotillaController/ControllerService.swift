import FlotillaCore
import FlotillaHTTP
import FlotillaKafka
import Foundation
import Logging
import Prometheus
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
    private let state = Mutex<(outcome: ControllerOutcome?, httpAddress: String?, publisher: RecordPublisher?)>((nil, nil, nil))
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
        logger[metadataKey: LoggingKeys.job] = "\(options.job)"
        self.logger = logger
    }

    /// How the run ended, once it has.
    public var outcome: ControllerOutcome? { state.withLock { $0.outcome } }
    /// `http://HOST:PORT` once the HTTP server listens.
    public var httpAddress: String? { state.withLock { $0.httpAddress } }
    /// The publisher HTTP actions publish with, while connected.
    var controlPublisher: RecordPublisher? { state.withLock { $0.publisher } }

    /// `Service`: runs the job, without the HTTP server (`statusServer()` is a service of its
    /// own beside it); the outcome is in `outcome`. A graceful shutdown (SIGTERM) stops the fleet
    /// and returns without finishing the job (a later controller carries on).
    public func run() async throws {
        let outcome = try await runConnected()
        state.withLock { $0.outcome = outcome }
    }

    /// The HTTP server of `options.http` (status, metrics, dashboard, actions) as a `Service` to
    /// run beside this one; nil without `options.http`. It calls `onListening` once bound.
    public func statusServer() -> OperatorServer? {
        guard let settings = options.http else { return nil }
        if !settings.address.isLoopback {
            logger.warning("the HTTP server listens beyond this machine", metadata: [
                "flotilla.address": "\(settings.address)", "flotilla.actions": "\(settings.token == nil ? "disabled" : "need the token")",
            ])
        }
        return operatorServer(settings) { [onListening] address in
            self.state.withLock { $0.httpAddress = address }
            onListening(address)
        }
    }

    /// Runs the job to completion or cancellation, with the HTTP server of `options.http` beside
    /// it until the job ends (embedding and tests; the executables run both in one group).
    /// Returns nil when shut down gracefully first.
    public func runJob() async throws -> ControllerOutcome? {
        guard let server = statusServer() else { return try await runConnected() }
        return try await server.serving { try await runConnected() }
    }

    private func runConnected() async throws -> ControllerOutcome? {
        let brokers = BrokerConnection(bootstrapServers: options.brokers, properties: options.kafkaProperties, clientID: "flotilla-controller")
        let topics = TopicNames(prefix: options.topicPrefix, job: options.job)
        let connection: Connection
        do throws(FlotillaError) {
            connection = Connection(
                publisher: try RecordPublisher(connection: brokers, linger: .milliseconds(1), logger: logger),
                admin: try BrokerAdmin(connection: brokers, logger: logger),
                reader: try JobTopicsReader(connection: brokers, topics: topics, logger: logger),
                topics: topics)
        } catch {
            throw FlotillaError(.kafka, "cannot create Kafka clients for \(options.brokers)", underlying: error)
        }
        state.withLock { $0.publisher = connection.publisher }
        defer { state.withLock { $0.publisher = nil } }
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
        await connection.publisher.flush(timeout: .seconds(2))
        await connection.reader.close()
        return try outcome.get()
    }
}

/// The Kafka clients of one run.
struct Connection: Sendable {
    let publisher: RecordPublisher
    let admin: BrokerAdmin
    let reader: JobTopicsReader
    let topics: TopicNames
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
        var manifests = ManifestCollector(topics: connection.topics)
        var problems = 0
        var jobsEnded: Set<TopicPartition> = []
        let deadline = ContinuousClock.now + options.manifestTimeout
        while manifests.latest == nil {
            if ContinuousClock.now >= deadline || jobsPartitions.isSubset(of: jobsEnded) { throw notFound }
            for event in try await reader.poll(timeout: .milliseconds(100)) {
                switch event {
                case .record(let record): manifests.add(record, problems: &problems)
                case .end(let partition, _): jobsEnded.insert(partition)
                }
            }
        }
        guard let manifest = manifests.latest else { throw FlotillaError(.internal, "manifest vanished") }
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
        let partitions = try await reader.readAll(admin: connection.admin, timeout: options.manifestTimeout)
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
                case .record(let record):
                    records += 1
                    apply(record, to: &run, replaying: true)
                    // A heartbeat sent after the replay began: everything before it was read.
                    if record.topic == connection.topics.heartbeats, (record.timestamp ?? 0) >= startedAt {
                        ended.insert(record.topicPartition)
                    }
                case .end(let partition, let offset):
                    ended.insert(partition)
                    if partition.topic == connection.topics.acks { run.reachedAcksEnd(partition, offset) }
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
            logger.error("cannot move a shard's output file into place", metadata: [LoggingKeys.shard: "\(ack.shard)", "flotilla.error": "\(error)"])
        }
    }

    /// The shared jobs topic; its absence means no job was ever submitted with this prefix.
    private func assignJobsTopic(_ connection: Connection, notFound: FlotillaError) async throws -> Set<TopicPartition> {
        let result: Result<Set<TopicPartition>, FlotillaError>
        do {
            result = .success(try await connection.reader.readAll(admin: connection.admin, only: [connection.topics.jobs], timeout: .zero))
        } catch {
            result = .failure(error.code == .invalidInput ? notFound : error)
        }
        return try result.get()
    }

    /// The per-job topics, when `flotilla submit` has not created them (harmless when it has).
    func createTopics(_ connection: Connection, config: JobConfig) async throws {
        try await connection.admin.createTopics(for: config, includingJobs: false)
    }

    /// Applies one record of any of the job's topics.
    func apply(_ record: TopicRecord, to run: inout ControllerRun, replaying: Bool) {
        let topics = TopicNames(prefix: options.topicPrefix, job: options.job)
        let now = Timestamp.now()
        if record.topic == topics.jobs, record.key != options.job {
            // Another job: listed for the dashboard's picker; a record that does not decode is not ours to judge.
            if let other = try? record.decode(JobManifest.self) { run.otherJobs[other.config.job] = JobListing(other) }
            return
        }
        do throws(FlotillaError) {
            switch try record.jobRecord(in: topics) {
            case .manifest(let manifest):
                if let problem = signer?.problem(with: manifest) {
                    logger.error("ignoring a manifest update", metadata: ["flotilla.error": "\(problem)"])
                    return
                }
                run.manifest = manifest
                if manifest.status == .cancelled { run.cancelled = run.cancelled ?? "the job's manifest says cancelled" }
            case .shard(let shard):
                if let problem = run.manifest.config.problem(with: shard.source) { throw FlotillaError(.invalidInput, problem) }
                run.ledger.apply(shard: shard, partition: Int(record.partition), offset: record.offset, receivedAt: replaying ? nil : now)
            case .control(let control):
                apply(control, to: &run, replaying: replaying, now: now)
            case .ack(let ack):
                run.ledger.apply(ack: ack)
                if ack.status == .done, let directory = run.manifest.config.outputs.directory {
                    settleOutputFile(of: ack, in: OutputDirectory(directory), winner: run.ledger.winningRun(of: ack.shard))
                }
            case .controllerHeartbeat(let beat):
                apply(beat, to: &run, replaying: replaying, now: now)
            case .heartbeat(let heartbeat):
                apply(heartbeat, to: &run, replaying: replaying, now: now)
            case .deadLetter(let letter):
                run.ledger.apply(deadLetter: letter)
            case .settle, .results, nil:
                break
            }
        } catch {
            if record.topic == topics.shards { undecodable(record, error, &run) }
            logger.warning("skipping a record that cannot be decoded", metadata: [
                "flotilla.topic": "\(record.topic)", "flotilla.offset": "\(record.offset)", "flotilla.error": "\(error)",
            ])
        }
    }

    /// A shard record that cannot be run: failed in the ledger, and dead-lettered here, not only by
    /// a worker that receives it (with the warm start a job can end before any worker reads its
    /// partitions; a duplicate letter for the same key counts once).
    private func undecodable(_ record: TopicRecord, _ error: FlotillaError, _ run: inout ControllerRun) {
        if let shard = record.key, !shard.isEmpty {
            run.ledger.applyUndecodableShard(shard, reason: "\(error)")
        }
        run.undecodable.append((record.key ?? "unknown", DeadLetterRecord(
            job: options.job, reason: "\(error)", raw: record.value, topic: record.topic,
            partition: Int(record.partition), offset: record.offset, from: "controller")))
    }

    private func apply(_ control: ControlRecord, to run: inout ControllerRun, replaying: Bool, now: Int64) {
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
    }

    private func apply(_ heartbeat: HeartbeatRecord, to run: inout ControllerRun, replaying: Bool, now: Int64) {
        // Replayed heartbeats count from when they were sent, so a long-dead worker is lost at once.
        run.ledger.apply(heartbeat: heartbeat, receivedAt: replaying ? min(heartbeat.time, now) : now)
        guard !replaying else { return }
        run.heartbeatLagMs = max(run.heartbeatLagMs, now - heartbeat.time)
        run.cost.heartbeat(lagMs: now - heartbeat.time)
        if let failure = heartbeat.failure {
            logger.error("worker cannot start", metadata: [LoggingKeys.worker: "\(heartbeat.worker)", "flotilla.error": "\(failure.message)"])
            run.fleet.failed(heartbeat.worker, failure, now: now)
        } else if heartbeat.state == .running {
            run.fleet.running()
            if !heartbeat.inFlight.isEmpty || !(heartbeat.committed ?? []).isEmpty {
                run.fleet.heardWorking(from: heartbeat.worker, now: min(heartbeat.time, now))
            }
        }
    }
}
