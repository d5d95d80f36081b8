import ArgumentParser
import EmbeddedBroker
import FlotillaController
import FlotillaCore
import FlotillaSpec
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
            Shows live progress, then a summary; with --json stdout is one JSON object and the human \
            lines go to stderr. With the embedded broker the results are written to \
            JOB.results.jsonl in the current folder (or --out), since the broker ends with the run. \
            Exit status: 0 every shard done, 3 some shards dead-lettered, 4 more failed samples than \
            faults.maxErrorRate allows, 2 bad input or configuration (a predictor that cannot start \
            included), 1 anything else. Ctrl-C stops the fleet cleanly and keeps the results so far. \
            It serves a live dashboard at / and /status, /metrics, /healthz on 127.0.0.1 and a \
            free port (--http-port or --http-address choose; docs/OPERATIONS.md, "HTTP") and prints \
            the dashboard's address at the start.

            Examples: flotilla run config/examples/quickstart.yaml --out predictions.jsonl
                      flotilla run job.yaml --brokers 127.0.0.1:9092 --resume   (after an interruption)
            """
    )

    @Argument(help: "The job spec (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @Option(help: "Workers to run (default: the job's workers.min); widens workers.min...workers.max to include it.")
    var workers: Int?

    @OptionGroup var kafka: KafkaOptions

    @Flag(help: "Print the final summary as one JSON object on stdout (human lines go to stderr).")
    var json = false

    @Flag(help: "Carry on a job submitted before (with --brokers): publish nothing new, run what is not done.")
    var resume = false

    @Option(help: "Write the results here as JSON lines, one per sample (default with the embedded broker: JOB.results.jsonl).")
    var out: String?

    @Flag(name: .customLong("no-out"), help: "Write no results file (with the embedded broker they are gone when the run ends).")
    var noOut = false

    /// Serve the dashboard, /status, /metrics, /healthz (and the actions, with the token): on loopback and a free port unless given.
    @OptionGroup var http: HTTPOptions

    @Option(name: .customLong("log-dir"), help: "Folder for the broker's and workers' logs (default: a temporary folder, removed after a successful run).")
    var logDir: String?

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        if out != nil && noOut { throw ValidationError("--out and --no-out contradict each other; give one") }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            let logger = CommandLogging.logger("flotilla.run")
            let httpSettings = try http.settings(always: true)
            var phases = RunPhases()
            let config = try JobSpecLoader.load(path: spec, builtins: Set(BuiltinPredictors.names))
            let logs = try logDirectory(job: config.job)
            var embedded: EmbeddedBroker?
            let brokers: String
            if let given = kafka.brokers ?? config.kafka.brokers {
                brokers = given
            } else {
                let broker = try await EmbeddedBroker(logFile: "\(logs.path)/broker.log")
                embedded = broker
                brokers = broker.bootstrapServers
                printError("flotilla run: embedded broker on \(brokers)")
            }
            defer { embedded?.stop() }
            let resultsFile = noOut ? nil : out ?? (embedded == nil ? nil : "\(config.job).results.jsonl")
            var kafkaOptions = kafka
            kafkaOptions.brokers = brokers
            let connection = try kafkaOptions.connection()
            phases.brokerReady = Timestamp.now()

            var submitter = JobSubmitter(logger: CommandLogging.kafkaLogger())
            submitter.signer = try ManifestSignature.fromEnvironment()
            let plan = try await submitter.plan(config)
            _ = try await submitter.submit(plan, to: connection, resume: resume)
            phases.submitted = Timestamp.now()
            printError("flotilla run: job \(config.job): \(plural(plan.samples, "sample")) in \(plural(plan.shards.count, "shard")), \(plural(config.stages.count, "stage"))")

            let backend = try FleetLauncher.localBackend(job: config.job, brokers: brokers, topicPrefix: config.kafka.topicPrefix,
                                                         kafkaProperties: connection.properties, logDirectory: logs.path, logger: logger)
            var options = ControllerOptions(job: config.job, brokers: brokers, topicPrefix: config.kafka.topicPrefix, workers: workers,
                                            kafkaProperties: connection.properties)
            options.http = httpSettings
            options.signer = submitter.signer
            let service = ControllerService(options: options, backend: backend, logger: CommandLogging.kafkaLogger(),
                                            registry: CommandMetrics.bootstrap()) { address in
                printError("flotilla run: dashboard at \(address)/ (status at \(address)/status)")
            }
            let outcome = try await FleetLauncher.runWithProgress(service, totalSamples: plan.samples, logger: logger)
            var extra: [String: String] = [:]
            // A job that never finished a shard has nothing to write.
            if let resultsFile, (outcome?.summary.done ?? 1) > 0 || service.board.status.samplesDone > 0 {
                let written = try await ResultsFile.write(job: config.job, prefix: config.kafka.topicPrefix, connection: connection, to: resultsFile)
                printError("flotilla run: results: \(ResultsFile.describe(written, path: resultsFile))")
                extra["results"] = resultsFile
            } else if embedded == nil {
                printError("flotilla run: results stay in Kafka: flotilla results \(config.job) --brokers \(brokers)\(config.kafka.topicPrefix == KafkaConfig.defaultTopicPrefix ? "" : " --prefix \(config.kafka.topicPrefix)")")
            }
            guard let outcome else {
                printError("flotilla run: stopped before the job finished (logs in \(logs.path))")
                throw ExitCode(1)
            }
            phases.finished(outcome.summary)
            FleetLauncher.report(outcome, command: "flotilla run", json: json, phases: phases, extra: extra)
            if outcome.exitCode != 0 {
                printError("flotilla run: logs in \(logs.path)")
                throw ExitCode(outcome.exitCode)
            }
            // Nothing to look into after a clean run: a temporary log folder goes (one given with --log-dir stays).
            if logs.temporary { embedded?.stop(); try? FileManager.default.removeItem(atPath: logs.path) }
        }
    }

    private func logDirectory(job: String) throws(FlotillaError) -> (path: String, temporary: Bool) {
        let folder = logDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-run-\(job)-\(getpid())").path
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw FlotillaError(.invalidConfiguration, "cannot create the log folder \(folder)", underlying: error)
        }
        return (folder, logDir == nil)
    }
}
