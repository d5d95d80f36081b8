import FlotillaController
import FlotillaCore
import FlotillaHTTP
import Foundation
import Logging
import ServiceLifecycle

/// Wiring shared by `flotilla controller` and `flotilla run`: a controller with local workers.
enum FleetLauncher {
    /// Workers as child processes of this executable, logging to `logDirectory`.
    static func localBackend(job: String, brokers: String, topicPrefix: String, kafkaProperties: [String: String],
                             logDirectory: String, logger: Logger) throws(FlotillaError) -> LocalPodBackend {
        let arguments = ["worker", job, "--brokers", brokers, "--prefix", topicPrefix]
        // Properties reach the workers in a file only the owner can read, never on their command
        // lines (which `ps` shows everyone): they may hold SASL passwords.
        // Workers do not inherit the controller's HTTP address (they would all try to bind it) nor
        // its action token (they take no actions). An empty value reads as unset.
        var environment: [String: String] = [HTTPListenAddress.variable: "", ActionToken.variable: "", ActionToken.fileVariable: ""]
        if !kafkaProperties.isEmpty {
            try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
            let path = "\(logDirectory)/kafka.properties"
            try KafkaOptions.writeProperties(kafkaProperties, to: path)
            environment[KafkaOptions.propertiesFileVariable] = path
        }
        return try LocalPodBackend(executable: LocalPodBackend.currentExecutable, baseArguments: arguments,
                                   logDirectory: logDirectory, environment: environment, logger: logger)
    }

    /// Runs the controller, and its HTTP server as a service beside it, until the job ends or
    /// SIGINT/SIGTERM stops it; nil when stopped first.
    static func run(_ service: ControllerService, logger: Logger) async throws -> ControllerOutcome? {
        // The server first: a group stops its services in reverse order, so `/status` answers
        // until the controller has stopped its fleet.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let server = service.statusServer() {
            services.append(.init(service: server, failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        services.append(.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        return service.outcome
    }

    /// Runs the controller with live progress on stderr until the job ends or a signal stops it.
    static func runWithProgress(_ service: ControllerService, totalSamples: Int?, logger: Logger) async throws -> ControllerOutcome? {
        let progress = ProgressDisplay(board: service.board, totalSamples: totalSamples)
        let outcome = try await withThrowingTaskGroup(of: ControllerOutcome??.self) { group in
            group.addTask { try await run(service, logger: logger) }
            group.addTask { await progress.run(); return nil }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let outcome = result { return outcome }
            }
            return nil
        }
        progress.draw(final: true)
        return outcome
    }

    /// The closing lines: a sentence, the most common errors, why the job failed, and with
    /// `json` the one-line JSON summary last. With `json` the human lines go to stderr, so that
    /// stdout is the JSON object alone (`| jq` works).
    static func report(_ outcome: ControllerOutcome, command: String, json: Bool, phases: RunPhases? = nil,
                       extra: [String: String] = [:]) {
        let summary = outcome.summary
        let say: (String) -> Void = json ? { printError($0) } : { print($0) }
        let counts = "\(summary.done)/\(plural(summary.shards, "shard")) done, \(summary.dead) dead-lettered"
        switch outcome {
        case .completed:
            let seconds = String(format: "%.1f", summary.seconds), wall = String(format: "%.1f", summary.wallSeconds ?? summary.seconds)
            let cpu = summary.workerCPU?.microsPerSample.map { String(format: "; worker CPU %.1f µs/sample", $0) } ?? ""
            say("\(command): job \(summary.job) finished: \(counts), \(plural(summary.samples, "sample")) (\(summary.failedSamples) failed) in \(seconds) s of processing (\(wall) s since submit), \(String(format: "%.0f", summary.samplesPerSecond)) samples/s\(cpu)")
        case .cancelled:
            say("\(command): job \(summary.job) was cancelled: \(counts)")
        case .failed:
            say("\(command): job \(summary.job) FAILED after \(counts), \(plural(summary.samples, "sample")) (\(summary.failedSamples) failed)")
        }
        if let errors = summary.topErrors, !errors.isEmpty {
            say("most common errors:\n" + errors.map { "  \($0.count) × \($0.message)" }.joined(separator: "\n"))
        }
        if let failure = summary.failure {
            say("\(command): \(failure.message) (exit \(failure.exitCode))")
        }
        if let phases, outcome.exitCode == 0 { say("\(command): \(phases.description)") }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let line = RunSummaryLine(summary: summary, phases: phases, extra: extra)
            if let data = try? encoder.encode(line) { print(String(decoding: data, as: UTF8.self)) }
        }
    }
}

/// "1 shard", "2 shards".
func plural(_ count: Int, _ word: String) -> String {
    "\(count) \(word)\(count == 1 ? "" : "s")"
}

/// Where the time of `flotilla run` went, in seconds from the command's start: the embedded
/// broker up, the job submitted, the first shard started, its results committed, the job
/// complete (every ack read), and the summary printed.
struct RunPhases: Sendable, Encodable, CustomStringConvertible {
    let start = Timestamp.now()
    var brokerReady: Int64?
    var submitted: Int64?
    var firstStart: Int64?
    var firstResult: Int64?
    var complete: Int64?
    var end: Int64?

    mutating func finished(_ summary: JobStatusSummary) {
        firstStart = summary.startedAt
        firstResult = summary.firstResultAt
        complete = summary.completedAt
        end = Timestamp.now()
    }

    private func seconds(_ time: Int64?) -> Double? { time.map { Double(max(0, $0 - start)) / 1_000 } }

    private enum CodingKeys: String, CodingKey { case broker, submitted, firstStart, firstResult, complete, end }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(seconds(brokerReady), forKey: .broker)
        try container.encodeIfPresent(seconds(submitted), forKey: .submitted)
        try container.encodeIfPresent(seconds(firstStart), forKey: .firstStart)
        try container.encodeIfPresent(seconds(firstResult), forKey: .firstResult)
        try container.encodeIfPresent(seconds(complete), forKey: .complete)
        try container.encodeIfPresent(seconds(end), forKey: .end)
    }

    var description: String {
        let parts: [(String, Int64?)] = [("broker", brokerReady), ("submitted", submitted), ("first shard", firstStart),
                                         ("first results", firstResult), ("complete", complete), ("exit", end)]
        return "time line " + parts.compactMap { name, time in seconds(time).map { String(format: "%@ %.2f s", name, $0) } }
            .joined(separator: ", ")
    }
}

/// The JSON line `flotilla run --json` prints: the summary's fields, plus `phases` when known
/// and `extra` strings (e.g. `results`, the file the results were written to).
private struct RunSummaryLine: Encodable {
    let summary: JobStatusSummary
    let phases: RunPhases?
    let extra: [String: String]

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    func encode(to encoder: any Encoder) throws {
        try summary.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encodeIfPresent(phases, forKey: Key(stringValue: "phases"))
        for (key, value) in extra { try container.encode(value, forKey: Key(stringValue: key)) }
    }
}
