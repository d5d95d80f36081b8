import ArgumentParser
import FlotillaCore
import FlotillaSpec
import FlotillaJobs
import FlotillaKafka
import Foundation
import Logging

/// The broker options shared by every command that talks to Kafka.
struct KafkaOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers, host:port[,host:port...].")
    var brokers: String?

    @Option(name: .customLong("kafka-property"), parsing: .singleValue,
            help: ArgumentHelp("A librdkafka property passed through, KEY=VALUE (repeatable), e.g. security.protocol=SSL.",
                               valueName: "key=value"))
    var kafkaProperties: [String] = []

    @Option(name: .customLong("kafka-properties-file"),
            help: ArgumentHelp("librdkafka properties as KEY=VALUE lines (# comments), e.g. SASL credentials (default: $FLOTILLA_KAFKA_PROPERTIES_FILE).",
                               valueName: "path"))
    var kafkaPropertiesFile: String?

    @Option(help: "Seconds one broker request may take before the command gives up.")
    var timeout: Double = 10

    /// The connection to use: `--brokers`, else `fallback` (the spec's kafka.brokers; say
    /// `specHasBrokers` so the message mentions it).
    /// Missing brokers, a bad property or timeout are configuration errors (exit 2).
    func connection(fallback: String? = nil, specHasBrokers: Bool = false) throws(FlotillaError) -> BrokerConnection {
        guard let servers = (brokers ?? fallback).map({ $0.trimmingCharacters(in: .whitespaces) }), !servers.isEmpty else {
            throw FlotillaError(
                .invalidConfiguration,
                "no Kafka brokers: pass --brokers HOST:PORT\(specHasBrokers ? " or set kafka.brokers in the job spec" : "")")
        }
        if let problem = Self.problem(withBrokers: servers) {
            throw FlotillaError(.invalidConfiguration, "\(brokers == nil ? "kafka.brokers" : "--brokers") '\(servers)': \(problem)")
        }
        guard timeout > 0, timeout.isFinite else {
            throw FlotillaError(.invalidConfiguration, "--timeout must be a positive number of seconds, not \(timeout)")
        }
        var properties: [String: String] = [:]
        if let path = kafkaPropertiesFile {
            properties = try Self.properties(fromFile: path)
        } else if let path = ProcessInfo.processInfo.environment[Self.propertiesFileVariable], !path.isEmpty {
            // A file the environment names but nobody made is an optional Secret left out (a
            // Kubernetes pod's mount): say so and go on; one that exists must be readable.
            if FileManager.default.fileExists(atPath: path) {
                properties = try Self.properties(fromFile: path)
            } else {
                printError("flotilla: \(Self.propertiesFileVariable) names \(path), which does not exist; going on without Kafka properties")
            }
        }
        for pair in kafkaProperties {
            let (key, value) = try Self.property(pair, from: "--kafka-property")
            properties[key] = value
        }
        return BrokerConnection(bootstrapServers: servers, properties: properties,
                                timeout: .milliseconds(Int64((timeout * 1000).rounded())))
    }
}

extension KafkaOptions {
    /// The environment variable naming a properties file, read by every command: how secrets
    /// (SASL passwords, key passwords) reach Flotilla without the spec, the manifest or a command line.
    static let propertiesFileVariable = "FLOTILLA_KAFKA_PROPERTIES_FILE"

    /// KEY=VALUE lines; blank lines and lines starting with `#` are skipped.
    static func properties(fromFile path: String) throws(FlotillaError) -> [String: String] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw FlotillaError(.invalidConfiguration, "cannot read the Kafka properties file \(path)")
        }
        var properties: [String: String] = [:]
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            let (key, value) = try property(trimmed, from: "\(path):\(number + 1)")
            properties[key] = value
        }
        return properties
    }

    /// One KEY=VALUE pair, checked against the properties Flotilla owns. Values are never quoted
    /// in messages: they may be secrets.
    static func property(_ pair: String, from place: String) throws(FlotillaError) -> (String, String) {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw FlotillaError(.invalidConfiguration, "\(place): a property must be KEY=VALUE")
        }
        let key = String(pair[..<equals]).trimmingCharacters(in: .whitespaces)
        if let reason = KafkaConfig.reservedProperties[key] {
            throw FlotillaError(.invalidConfiguration, "\(place): \(key) is not allowed: \(reason)")
        }
        return (key, String(pair[pair.index(after: equals)...]))
    }

    /// Writes `properties` to a file only its owner can read, for child processes.
    static func writeProperties(_ properties: [String: String], to path: String) throws(FlotillaError) {
        let text = properties.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined()
        guard FileManager.default.createFile(atPath: path, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
            throw FlotillaError(.invalidConfiguration, "cannot write \(path)")
        }
    }

    /// Why a bootstrap list is not `host:port[,host:port...]`, nil when it is. Checked up front:
    /// librdkafka would only answer "No brokers configured" after the full timeout.
    static func problem(withBrokers servers: String) -> String? {
        for entry in servers.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if entry.contains("://") { return "'\(entry)' has a scheme; give host:port, e.g. 127.0.0.1:9092" }
            guard let colon = entry.lastIndex(of: ":"), colon != entry.startIndex,
                  let port = Int(entry[entry.index(after: colon)...]), (1...65_535).contains(port) else {
                return "'\(entry)' is not host:port (e.g. 127.0.0.1:9092)"
            }
        }
        return nil
    }
}

/// The topic prefix of commands that name a job by id (the spec is not at hand).
struct JobTopicOptions: ParsableArguments {
    @Option(help: "The job's topic prefix (kafka.topicPrefix of its spec).")
    var prefix: String = KafkaConfig.defaultTopicPrefix

    func validated() throws(FlotillaError) -> String {
        if let problem = TopicNames.problem(withPrefix: prefix) {
            throw FlotillaError(.invalidConfiguration, "--prefix \(problem)")
        }
        return prefix
    }
}

extension JobControl {
    /// The control of job `id` on the cluster and prefix the command line names.
    init(_ kafka: KafkaOptions, _ topic: JobTopicOptions, job id: String) throws(FlotillaError) {
        self.init(connection: try kafka.connection(), prefix: try topic.validated(), job: try validatedJobID(id),
                  logger: CommandLogging.kafkaLogger())
    }
}

/// The job id argument, checked like the spec's `job`.
func validatedJobID(_ id: String) throws(FlotillaError) -> String {
    if let problem = JobSpecLoader.problem(withJobID: id) {
        throw FlotillaError(.invalidConfiguration, "job id '\(id)' \(problem)")
    }
    return id
}

/// Loggers of the job commands: swift-log bootstrapped once per process, to stderr (stdout is
/// for results and JSON summaries), level from FLOTILLA_LOG_LEVEL (default `warning`). Broker
/// connection errors are reported through the command's own message, so librdkafka's own log
/// lines are kept at `critical` unless the level is lowered explicitly.
enum CommandLogging {
    static func logger(_ label: String) -> Logger {
        _ = bootstrapped
        return Logger(label: label)
    }

    private static let bootstrapped: Void = LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = ProcessInfo.processInfo.environment["FLOTILLA_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return handler
    }

    /// The logger handed to Kafka clients.
    static func kafkaLogger() -> Logger {
        var logger = logger("flotilla.kafka")
        if ProcessInfo.processInfo.environment["FLOTILLA_LOG_LEVEL"] == nil { logger.logLevel = .critical }
        return logger
    }
}

/// Writes text to stderr.
func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}
