import FlotillaCore
import FlotillaKafka
import FlotillaPredictor
import FlotillaSources
import Foundation
import Logging

/// The parts a running worker is made of: its Kafka link, predictor pools and the processor.
struct WorkerRuntime: Sendable {
    let config: JobConfig
    let topics: TopicNames
    let link: WorkerLink
    let processor: ShardProcessor
    let slots: Int
    let outputDirectory: String?

    static func start(options: WorkerOptions, config: JobConfig, connection: BrokerConnection, logger: Logger) async throws(FlotillaError) -> WorkerRuntime {
        var pools: [(config: StageConfig, pool: PredictorPool)] = []
        let link: WorkerLink
        do throws(FlotillaError) {
            // The group join (seconds on some brokers) overlaps the predictors' start-up.
            link = try await WorkerLink.connect(connection: connection, config: config, workerID: options.workerID, logger: logger) { () throws(FlotillaError) in
                let devices = try deviceAllocator(options: options, stages: config.stages)
                // One budget for every stage: the stage whose batches wait grows while the others idle.
                let budget = ProcessBudget(total: options.cores ?? ProcessInfo.processInfo.activeProcessorCount)
                for stage in config.stages {
                    let pool = try PredictorPool(config: poolConfig(stage, config: config, workerID: options.workerID), logger: logger,
                                                 devices: stage.devices > 0 ? devices : nil, budget: budget)
                    pools.append((stage, pool))
                    do throws(FlotillaError) {
                        try await pool.start()
                    } catch {
                        throw FlotillaError(error.code, "stage '\(stage.name)' cannot start: \(error.message)")
                    }
                }
            }
        } catch {
            for (_, pool) in pools { await pool.shutdown() }
            throw error
        }
        // A shard per stage plus one being read or committed, and two per process of the widest
        // pool: while one waits on Kafka (~30 ms of fetch and transaction commit) the next keeps
        // the process busy. Not more: a started shard cannot be stolen by an idle worker. Fast
        // model (2 processes): 2 slots 0.39× the script, 4 slots 0.54–0.63×; balance (1 process):
        // 1.27 × ideal with 2 slots, 1.35 with 4. Not 1 for one process either: reading the next
        // shard from a slow source then waits for the last (`tools/bench/pipeline` 1.92× → 1.00×).
        let widestPool = config.stages.map(\.processes.max).max() ?? 1
        let slots = options.slots ?? max(2, config.stages.count + 1, 2 * widestPool)
        return WorkerRuntime(
            config: config, topics: config.topics, link: link,
            processor: ShardProcessor(job: config.job, stages: pools, reader: ShardReader(logger: logger, maxSampleBytes: config.shard.maxSampleBytes),
                                      maxMessageBytes: config.outputs.results ? config.kafka.maxMessageBytes : nil),
            slots: slots, outputDirectory: config.outputs.directory)
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

    /// Leaves the group (see `WorkerLink.shutdown`), stops the predictors.
    func shutdown(leaveGroup: Bool = true) async {
        await link.shutdown(leaveGroup: leaveGroup)
        for stage in processor.stages { await stage.pool.shutdown() }
    }
}
