import ArgumentParser
import EmbeddedBroker
import FlotillaController
import FlotillaCore
import FlotillaJobs
import FlotillaPredictor
import Foundation
import Logging

/// `flotilla run JOB.yaml`: the main job, all in one process tree.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job start to finish: embedded broker (unless --brokers), submit, controller, local workers.",
        discussion: """
            Shows live progress, then a summary; with --json the last line is one JSON object. \
            Exit status: 0 every shard done, 3 some shards dead-lettered, 2 bad input or configuration, \
            1 anything else. Ctrl-C stops the fleet cleanly.
            """
    )

    @Argument(help: "The job spec (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @Option(help: "Workers to run (default: the job's workers.min), within workers.min...workers.max.")
    var workers: Int?

    @OptionGroup var kafka: KafkaOptions

    @Flag(help: "Print the final summary as one JSON object on the last line.")
    var json = false

    @Option(name: .customLong("http-port"), help: "Serve /status, /metrics and /healthz on 127.0.0.1 at this port (0: any free port).")
    var httpPort: Int?

    @Option(name: .customLong("log-dir"), help: "Folder for the broker's and workers' logs (default: a new temporary folder).")
    var logDir: String?

    @Option(name: .customLong("worker-arg"), help: ArgumentHelp("An extra argument for one worker, W=ARG (benchmarks: w1=--sequential).", visibility: .hidden))
    var workerArgs: [String] = []

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        if let httpPort, !(0...65535).contains(httpPort) { throw ValidationError("--http-port must be between 0 and 65535") }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            let logger = CommandLogging.logger("flotilla.run")
            var phases = RunPhases()
            let config = try JobSpecLoader.load(path: spec, builtins: Set(BuiltinPredictors.names))
            let logs = try logDirectory(job: config.job)
            var embedded: EmbeddedBroker?
            let brokers: String
            if let given = kafka.brokers ?? config.kafka.brokers {
                brokers = given
            } else {
                let broker = try await EmbeddedBroker(logFile: "\(logs)/broker.log")
                embedded = broker
                brokers = broker.bootstrapServers
                printError("flotilla run: embedded broker on \(brokers) (logs in \(logs))")
            }
            defer { embedded?.stop() }
            var kafkaOptions = kafka
            kafkaOptions.brokers = brokers
            let connection = try kafkaOptions.connection()
            phases.brokerReady = Timestamp.now()

            let submitter = JobSubmitter(logger: CommandLogging.kafkaLogger())
            let plan = try await submitter.plan(config)
            _ = try await submitter.submit(plan, to: connection)
            phases.submitted = Timestamp.now()
            printError("flotilla run: job \(config.job): \(plan.samples) samples in \(plan.shards.count) shards, \(config.stages.count) stage\(config.stages.count == 1 ? "" : "s")")

            let backend = try FleetLauncher.localBackend(job: config.job, brokers: brokers, topicPrefix: config.kafka.topicPrefix,
                                                         kafkaProperties: connection.properties, logDirectory: logs, logger: logger)
            let options = ControllerOptions(job: config.job, brokers: brokers, topicPrefix: config.kafka.topicPrefix, workers: workers,
                                            workerArguments: FleetLauncher.workerArguments(workerArgs), httpPort: httpPort,
                                            kafkaProperties: connection.properties)
            let service = ControllerService(options: options, backend: backend, logger: CommandLogging.kafkaLogger()) { address in
                printError("flotilla run: status at \(address)/status")
            }
            let progress = ProgressDisplay(board: service.board, totalSamples: plan.samples)
            let outcome = try await withThrowingTaskGroup(of: ControllerOutcome??.self) { group in
                group.addTask { try await FleetLauncher.run(service, logger: logger) }
                group.addTask { await progress.run(); return nil }
                defer { group.cancelAll() }
                while let result = try await group.next() {
                    if let outcome = result { return outcome }
                }
                return nil
            }
            progress.draw(final: true)
            guard let outcome else {
                printError("flotilla run: stopped before the job finished (worker logs in \(logs))")
                throw ExitCode(1)
            }
            phases.finished(outcome.summary)
            FleetLauncher.report(outcome, command: "flotilla run", json: json, phases: phases)
            if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
        }
    }

    private func logDirectory(job: String) throws(FlotillaError) -> String {
        let folder = logDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-run-\(job)-\(getpid())").path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw FlotillaError(.invalidConfiguration, "cannot create the log folder \(folder)", underlying: error)
        }
        return folder
    }
}
