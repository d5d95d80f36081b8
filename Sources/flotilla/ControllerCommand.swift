import ArgumentParser
import FlotillaController
import FlotillaCore
import Foundation
import Logging
import ServiceLifecycle

/// `flotilla controller JOB`: runs a submitted job to its end with a fleet of workers.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a submitted job: start workers, detect failures, re-enqueue, balance, finish.",
        discussion: """
            Rebuilds its state from the job's topics, so it can be stopped and restarted at any time \
            (that is how a job is resumed). Shows progress on stderr like `run`. Serves a live \
            dashboard (/), /status, /metrics and /healthz over HTTP, on 127.0.0.1 and a free port \
            unless --http-address or --http-port say otherwise; POST /actions/scale?workers=N and \
            /actions/cancel need the bearer token ($FLOTILLA_HTTP_TOKEN or --http-token-file). \
            Exit status as for `run`: 0 every shard done, 3 some shards dead-lettered, 4 too many \
            failed samples, 2 bad input or a predictor that cannot start (or an unknown job, or one \
            another controller already runs), 1 anything else (including a cancelled job, or one \
            taken over by another controller). One controller runs a job at a time: a second one \
            refuses to start unless given --take-over.

            Example: flotilla controller myjob --brokers 127.0.0.1:9092 --workers 4
            """
    )

    @Argument(help: "The job id (the last line `flotilla submit` printed).")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: JobTopicOptions

    @Option(help: "Where workers run: local (child processes), external (started by you), kubernetes.")
    var backend: String = "local"

    @Option(help: "Workers to run (default: the job's workers.min); widens workers.min...workers.max to include it.")
    var workers: Int?

    @OptionGroup var http: HTTPOptions

    @Option(name: .customLong("log-dir"), help: "Folder for the workers' log files (default: a folder under the temporary directory).")
    var logDir: String?

    @Flag(help: "Print the final summary as one JSON object on stdout (human lines go to stderr).")
    var json = false

    @Flag(name: .customLong("take-over"), help: "Replace a controller that already runs the job (it stops its workers and exits) instead of refusing to start.")
    var takeOver = false

    func validate() throws {
        guard ["local", "external", "kubernetes"].contains(backend) else {
            throw ValidationError("--backend must be local, external or kubernetes, not '\(backend)'")
        }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            let job = try validatedJobID(job)
            let httpSettings = try http.settings(always: true)
            let connection = try kafka.connection()
            let prefix = try topics.validated()
            if backend == "kubernetes" {
                throw FlotillaError(.invalidConfiguration, "the kubernetes backend is not implemented yet; use --backend local or external")
            }
            let logger = CommandLogging.logger("flotilla.controller")
            let pods: any PodBackend
            if backend == "local" {
                let folder = logDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(job)-logs").path
                pods = try FleetLauncher.localBackend(job: job, brokers: connection.bootstrapServers, topicPrefix: prefix,
                                                      kafkaProperties: connection.properties, logDirectory: folder, logger: logger)
                printError("flotilla controller: worker logs in \(folder)")
            } else {
                pods = ExternalPodBackend()
            }
            var options = ControllerOptions(job: job, brokers: connection.bootstrapServers, topicPrefix: prefix, workers: workers,
                                            kafkaProperties: connection.properties)
            options.http = httpSettings
            options.manifestTimeout = connection.timeout
            options.takeOver = takeOver
            options.signer = try ManifestSignature.fromEnvironment()
            let service = ControllerService(options: options, backend: pods, logger: CommandLogging.kafkaLogger(),
                                            registry: CommandMetrics.bootstrap()) { address in
                printError("flotilla controller: status at \(address)/status")
                printError("flotilla controller: dashboard at \(address)/")
            }
            guard let outcome = try await FleetLauncher.runWithProgress(service, totalSamples: nil, logger: logger) else {
                printError("flotilla controller: stopped before the job finished; run the same command again to carry on")
                throw ExitCode(1)
            }
            FleetLauncher.report(outcome, command: "flotilla controller", json: json)
            if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
        }
    }
}
