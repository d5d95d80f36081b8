import ArgumentParser
import FlotillaController
import FlotillaCore
import Foundation
import Logging
import ServiceLifecycle

/// `flotilla controller`: runs a submitted job to its end with a fleet of workers.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a submitted job: start workers, detect failures, re-enqueue, balance, finish.",
        discussion: """
            Rebuilds its state from the job's topics, so it can be stopped and restarted at any time. \
            Serves /status, /metrics and /healthz on 127.0.0.1. Exit status: 0 every shard done, \
            3 some shards dead-lettered, 2 bad input, 1 anything else (including a cancelled job).
            """
    )

    @Option(help: "The job id (printed by `flotilla submit`).")
    var job: String

    @Option(help: "Kafka bootstrap servers, host:port[,host:port...].")
    var brokers: String

    @Option(help: "Where workers run: local (child processes), external (started by you), kubernetes.")
    var backend: String = "local"

    @Option(help: "Workers to run (default: the job's workers.min); clamped to workers.min...workers.max.")
    var workers: Int?

    @Option(name: .customLong("http-port"), help: "Port of the status server on 127.0.0.1 (0: any free port).")
    var httpPort: Int = 0

    @Option(name: .customLong("log-dir"), help: "Folder for the workers' log files (default: a folder under the temporary directory).")
    var logDir: String?

    @Option(name: .customLong("topic-prefix"), help: "The topic prefix the job was submitted with.")
    var topicPrefix: String = KafkaConfig.defaultTopicPrefix

    @Option(name: .customLong("worker-arg"), help: "An extra argument for one worker, as W=ARG (repeatable), e.g. w2=--slowdown=3.")
    var workerArgs: [String] = []

    @Flag(help: "Print the final summary as one JSON object on the last line.")
    var json = false

    func validate() throws {
        guard ["local", "external", "kubernetes"].contains(backend) else {
            throw ValidationError("--backend must be local, external or kubernetes, not '\(backend)'")
        }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        guard (0...65535).contains(httpPort) else { throw ValidationError("--http-port must be between 0 and 65535") }
        if let problem = JobSpecLoader.problem(withJobID: job) { throw ValidationError("--job: \(problem)") }
        for argument in workerArgs where !argument.contains("=") || argument.hasPrefix("=") {
            throw ValidationError("--worker-arg must look like W=ARG (e.g. w2=--slowdown=3), not '\(argument)'")
        }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            if let problem = KafkaOptions.problem(withBrokers: brokers) {
                throw FlotillaError(.invalidConfiguration, "--brokers '\(brokers)': \(problem)")
            }
            if backend == "kubernetes" {
                throw FlotillaError(.invalidConfiguration, "the kubernetes backend is not implemented yet; use --backend local or external")
            }
            let logger = Logger(label: "flotilla.controller")
            let pods: any PodBackend
            if backend == "local" {
                let folder = logDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(job)-logs").path
                pods = try FleetLauncher.localBackend(job: job, brokers: brokers, topicPrefix: topicPrefix, kafkaProperties: [:],
                                                      logDirectory: folder, logger: logger)
                printError("flotilla controller: worker logs in \(folder)")
            } else {
                pods = ExternalPodBackend()
            }
            let options = ControllerOptions(job: job, brokers: brokers, topicPrefix: topicPrefix, workers: workers,
                                            workerArguments: FleetLauncher.workerArguments(workerArgs), httpPort: httpPort)
            let service = ControllerService(options: options, backend: pods, logger: logger) { address in
                printError("flotilla controller: status at \(address)/status")
            }
            guard let outcome = try await FleetLauncher.run(service, logger: logger) else {
                printError("flotilla controller: stopped before the job finished; start a controller again to carry on")
                throw ExitCode(1)
            }
            FleetLauncher.report(outcome, command: "flotilla controller", json: json)
            if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
        }
    }
}
