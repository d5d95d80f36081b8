import FlotillaCore
import FlotillaKafka
import FlotillaPredictor
import FlotillaSources
import Foundation
import Logging
import RdKafka

/// The parts a running worker is made of: Kafka clients, predictor pools and the processor.
struct WorkerRuntime: Sendable {
    let config: JobConfig
    let topics: TopicNames
    let consumer: KafkaConsumer
    let resultProducer: KafkaProducer
    /// Heartbeats and dead letters: outside transactions, so they flow while a transaction is open.
    let plainProducer: KafkaProducer
    /// The control topic: commands, the warm start's takes among them, so a short fetch wait.
    let commandReader: TopicReader
    /// The acks topic: done shards to skip, a hint that can come a second late.
    let acksReader: TopicReader
    /// Reads single shard records named by `take` commands (group-less).
    let expressReader: KafkaConsumer
    let ledger: WorkerLedger
    let publisher: ResultPublisher
    let processor: ShardProcessor
    let slots: Int
    let outputDirectory: String?

    static func start(options: WorkerOptions, config: JobConfig, client: KafkaClientConfiguration, logger: Logger) async throws(FlotillaError) -> WorkerRuntime {
        let topics = config.topics
        // Join the group first: the join (seconds on some brokers) overlaps the predictors' start-up.
        let consumer: KafkaConsumer
        do {
            var consumerConfig = KafkaConsumerConfiguration(client: client, groupID: topics.workerGroup)
            consumerConfig.sessionTimeout = .seconds(6)
            // What the worker holds is bounded by polling only what its queue has room for and pausing
            // when full. The fetcher must refill at once when a slot frees: by default it backs off
            // for up to a second after pauses and full local queues, which starves the predictors.
            for (key, value) in ["fetch.queue.backoff.ms": "10", "fetch.error.backoff.ms": "50"] {
                consumerConfig.client.properties[key] = consumerConfig.client.properties[key] ?? value
            }
            // Hoarding is bounded by polling only what the queue has room for; a tiny librdkafka
            // queue would instead make the fetcher back off (fetch.queue.backoff.ms). A fetch with
            // data returns at once; an idle worker's empty fetches are what this wait paces
            // (re-enqueued work reaches it sooner through the express lane).
            consumerConfig.fetchWait = .milliseconds(500)
            consumer = try KafkaConsumer(configuration: consumerConfig, logger: logger)
            try consumer.subscribe([topics.shards])
        } catch {
            throw FlotillaError(.kafka, "cannot join the worker group of job '\(config.job)'", underlying: error)
        }
        var pools: [(config: StageConfig, pool: PredictorPool)] = []
        do throws(FlotillaError) {
            let devices = try deviceAllocator(options: options, stages: config.stages)
            // One budget for every stage: the stage whose batches wait grows while the others idle.
            let budget = ProcessBudget(total: options.cores ?? ProcessInfo.processInfo.activeProcessorCount)
            for stage in config.stages {
                let pool = try PredictorPool(config: poolConfig(stage, config: config, workerID: options.workerID), logger: logger,
                                             devices: stage.devices > 0 ? devices : nil, budget: budget)
                pools.append((stage, pool))
                do {
                    try await pool.start()
                } catch {
                    throw FlotillaError(error.code, "stage '\(stage.name)' cannot start: \(error.message)")
                }
            }
        } catch {
            for (_, pool) in pools { await pool.shutdown() }
            throw error
        }
        do {
            // Commands (the warm start's takes among them) within a quarter second: the embedded
            // broker holds an empty fetch for its whole wait. Acks only save work, so they wait 1 s:
            // Tansu re-polls a fetch's partitions until its wait ends, each poll scanning its
            // transaction state, and 20 workers' ack tails at 250 ms saturated it (measured).
            // Both readers start while the transactional producer initialises.
            async let commandReading = TopicReader(client: client, topics: [topics.control], isolation: .readUncommitted,
                                                   fetchWait: .milliseconds(250), logger: logger)
            async let acksReading = TopicReader(client: client, topics: [topics.acks], fetchWait: .seconds(1), logger: logger)
            let (resultProducer, transactional) = try await makeResultProducer(options: options, config: config, client: client, logger: logger)
            let resultPartitions = await resultProducer.loadMetadata(for: [topics.results, topics.acks])[topics.results]
            let plainProducer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: client), logger: logger)
            let commandReader = try await commandReading
            let acksReader = try await acksReading
            var expressConfig = KafkaConsumerConfiguration(client: client, groupID: nil)
            expressConfig.fetchWait = .milliseconds(10)  // a take should not wait out an empty fetch
            let expressReader = try KafkaConsumer(configuration: expressConfig, logger: logger)
            await expressReader.loadMetadata(for: [topics.shards])  // its first take should not wait for it
            // A shard per stage plus one being read or committed, and two per process of the widest
            // pool: while one waits on Kafka (~30 ms of fetch and transaction commit) the next keeps
            // the process busy. Not more: a started shard cannot be stolen by an idle worker. Fast
            // model (2 processes): 2 slots 0.39× the script, 4 slots 0.54–0.63×; balance (1 process):
            // 1.27 × ideal with 2 slots, 1.35 with 4.
            let widestPool = config.stages.map(\.processes.max).max() ?? 1
            let slots = options.slots ?? max(2, config.stages.count + 1, 2 * widestPool)
            return WorkerRuntime(
                config: config, topics: topics, consumer: consumer, resultProducer: resultProducer, plainProducer: plainProducer,
                commandReader: commandReader, acksReader: acksReader, expressReader: expressReader, ledger: WorkerLedger(workerID: options.workerID),
                publisher: ResultPublisher(producer: resultProducer, transactional: transactional, topics: topics,
                                           publishResults: config.outputs.results, maxMessageBytes: config.kafka.maxMessageBytes,
                                           resultPartitions: resultPartitions),
                processor: ShardProcessor(job: config.job, stages: pools, reader: ShardReader(logger: logger, maxSampleBytes: config.shard.maxSampleBytes)),
                slots: slots, outputDirectory: config.outputs.directory)
        } catch {
            for (_, pool) in pools { await pool.shutdown() }
            throw FlotillaError(.kafka, "cannot start the worker's Kafka clients", underlying: error)
        }
    }

    /// A transactional producer in exactly-once mode; falls back to at-least-once (logged once)
    /// when the broker cannot do transactions.
    private static func makeResultProducer(options: WorkerOptions, config: JobConfig, client: KafkaClientConfiguration,
                                           logger: Logger) async throws -> (KafkaProducer, Bool) {
        var producerConfig = KafkaProducerConfiguration(client: client)
        producerConfig.maxMessageBytes = config.kafka.maxMessageBytes
        guard config.delivery == .exactlyOnce else { return (try KafkaProducer(configuration: producerConfig, logger: logger), false) }
        producerConfig.transactionalID = "\(config.topics.prefix).\(config.job).\(options.workerID)"
        let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        let failure: KafkaError
        do {
            try await producer.initTransactions(timeout: .seconds(20))
            return (producer, true)
        } catch {
            failure = error
        }
        if failure.isFatal || failure.name == "_TIMED_OUT" { throw failure }
        logger.warning("the broker does not support transactions; falling back to at-least-once delivery (the reader rule still gives exactly-once results)",
                       metadata: ["flotilla.error": "\(failure)"])
        producerConfig.transactionalID = nil
        return (try KafkaProducer(configuration: producerConfig, logger: logger), false)
    }

    private static func poolConfig(_ stage: StageConfig, config: JobConfig, workerID: String) -> PredictorPoolConfig {
        let command: PredictorPoolConfig.Command = switch stage.predictor {
        case .command(let argv): .process(argv: argv)
        case .builtin(let name): .builtin(name)
        }
        var pool = PredictorPoolConfig(
            name: stage.name, command: command, batchSize: stage.batch, minProcesses: stage.processes.min,
            maxProcesses: stage.processes.max, batchTimeout: stage.timeout, startupTimeout: stage.startTimeout,
            maxAttempts: config.faults.maxAttempts, environment: stage.environment().merging(predictorIdentity(stage, config: config, workerID: workerID)) { spec, _ in spec },
            workingDirectory: config.baseDirectory)
        pool.devicesPerProcess = stage.devices
        return pool
    }

    /// The worker's devices, shared by every stage's pool; fails when the stages' smallest pools
    /// need more than there are (a fact about this worker, so the start failure is permanent).
    static func deviceAllocator(options: WorkerOptions, stages: [StageConfig],
                                environment: [String: String] = ProcessInfo.processInfo.environment) throws(FlotillaError) -> DeviceAllocator {
        let listed = options.devices ?? environment["CUDA_VISIBLE_DEVICES"].map { text in
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } ?? []
        let allocator = try DeviceAllocator(devices: listed)
        if let problem = allocator.problem(with: stages.map { ($0.name, $0.devices, $0.processes.min) }) {
            throw FlotillaError(.invalidConfiguration, problem)
        }
        return allocator
    }

    /// Who a predictor process works for, in its environment: for its logs and metrics (a stage's
    /// own `env` wins on a clash).
    static func predictorIdentity(_ stage: StageConfig, config: JobConfig, workerID: String) -> [String: String] {
        ["FLOTILLA_JOB": config.job, "FLOTILLA_STAGE": stage.name, "FLOTILLA_WORKER_ID": workerID]
    }

    /// Sends an undecodable or foreign record to the dead-letter topic with the reason.
    func deadLetter(message: KafkaMessage, reason: String, logger: Logger) async {
        logger.warning("shard record dead-lettered", metadata: ["flotilla.reason": "\(reason)", "flotilla.offset": "\(message.partition)@\(message.offset)"])
        let record = DeadLetterRecord(job: config.job, reason: reason, raw: message.value, topic: message.topic,
                                      partition: Int(message.partition), offset: message.offset, from: "worker")
        do {
            try await plainProducer.send(.record(record, topic: topics.dlq, key: message.keyString ?? "unknown"))
        } catch {
            logger.error("cannot dead-letter a record", metadata: ["flotilla.error": "\(error)"])
        }
    }

    /// Leaves the group, stops the predictors and flushes what is pending.
    /// Stops everything; `leaveGroup` false skips the consumer's close, which waits for a group
    /// join in progress to finish (~3 s for a worker stopped before its first assignment).
    func shutdown(leaveGroup: Bool = true) async {
        if leaveGroup { try? await consumer.close() }
        for stage in processor.stages { await stage.pool.shutdown() }
        try? await plainProducer.flush(timeout: .seconds(5))
        try? await resultProducer.flush(timeout: .seconds(5))
        await commandReader.close()
        await acksReader.close()
        try? await expressReader.close()
    }

    /// The shard records at these (partition, offset) positions of the shards topic, read in one
    /// pass, in the order asked; those that cannot be read within 5 s are left out.
    func fetchShardRecords(_ positions: [(partition: Int32, offset: Int64)]) async -> [KafkaMessage] {
        let found = await readShardRecords(positions)
        // Unassigned again: an assigned reader keeps fetching (100 fetches/s at its wait).
        try? await expressReader.assign([])
        return found
    }

    private func readShardRecords(_ positions: [(partition: Int32, offset: Int64)]) async -> [KafkaMessage] {
        let places = positions.map { TopicPartitionOffset(topics.shards, $0.partition, $0.offset) }
        var wanted = Set(places)
        let starts = Dictionary(positions.map { ($0.partition, $0.offset) }, uniquingKeysWith: min)
        var found: [TopicPartitionOffset: KafkaMessage] = [:]
        do {
            try await expressReader.assign(starts.map { TopicPartitionOffset(topics.shards, $0.key, $0.value) })
            let deadline = ContinuousClock.now + .seconds(5)
            while !wanted.isEmpty && ContinuousClock.now < deadline {
                for case .message(let message) in try await expressReader.poll(timeout: .milliseconds(100)) {
                    let place = TopicPartitionOffset(topics.shards, message.partition, message.offset)
                    if wanted.remove(place) != nil { found[place] = message }
                }
            }
        } catch {}
        return places.compactMap { found[$0] }
    }
}
