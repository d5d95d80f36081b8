import FlotillaController
import FlotillaCore
import Foundation
import Logging
import ServiceLifecycle

/// Wiring shared by `flotilla controller` and `flotilla run`: a controller with local workers.
enum FleetLauncher {
    /// `W=ARG` pairs into arguments per worker id.
    static func workerArguments(_ pairs: [String]) -> [String: [String]] {
        var arguments: [String: [String]] = [:]
        for pair in pairs {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            arguments[parts[0], default: []].append(parts.count > 1 ? parts[1] : "")
        }
        return arguments
    }

    /// Workers as child processes of this executable, logging to `logDirectory`.
    static func localBackend(job: String, brokers: String, topicPrefix: String, kafkaProperties: [String: String],
                             logDirectory: String, logger: Logger) throws(FlotillaError) -> LocalPodBackend {
        var arguments = ["worker", "--job", job, "--brokers", brokers, "--prefix", topicPrefix]
        for (key, value) in kafkaProperties.sorted(by: { $0.key < $1.key }) { arguments += ["--kafka-property", "\(key)=\(value)"] }
        return try LocalPodBackend(executable: LocalPodBackend.currentExecutable, baseArguments: arguments,
                                   logDirectory: logDirectory, logger: logger)
    }

    /// Runs the controller until the job ends or SIGINT/SIGTERM stops it; nil when stopped first.
    static func run(_ service: ControllerService, logger: Logger) async throws -> ControllerOutcome? {
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        return service.outcome
    }

    /// The closing lines: a sentence, and with `json` the one-line JSON summary last. With `json`
    /// the sentence goes to stderr, so that stdout is the JSON object alone (`| jq` works).
    static func report(_ outcome: ControllerOutcome, command: String, json: Bool) {
        let summary = outcome.summary
        let say: (String) -> Void = json ? { printError($0) } : { print($0) }
        switch outcome {
        case .completed:
            say("\(command): job \(summary.job) finished: \(summary.done)/\(summary.shards) shards done, \(summary.dead) dead-lettered, \(summary.samples) samples (\(summary.failedSamples) failed) in \(String(format: "%.1f", summary.seconds)) s of processing (\(String(format: "%.1f", summary.wallSeconds ?? summary.seconds)) s since submit), \(String(format: "%.0f", summary.samplesPerSecond)) samples/s\(summary.workerCPU?.microsPerSample.map { String(format: "; worker CPU %.1f µs/sample", $0) } ?? "")")
        case .cancelled:
            say("\(command): job \(summary.job) was cancelled: \(summary.done)/\(summary.shards) shards done")
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            if let data = try? encoder.encode(summary) { print(String(decoding: data, as: UTF8.self)) }
        }
    }
}
