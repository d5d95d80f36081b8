import FlotillaCore
import FlotillaSpec
import FlotillaJobs
import FlotillaKafka
import FlotillaTestSupport
import Foundation
import Logging
import RdKafka

/// A temporary folder for one test, removed when the value is released.
final class TemporaryFolder: Sendable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-jobs-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Writes `text` to `name` in the folder and returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = (path as NSString).appendingPathComponent(name)
        try Data(text.utf8).write(to: URL(fileURLWithPath: file))
        return file
    }

    /// A JSON-lines file of `count` samples with ids "x0", "x1", ...
    @discardableResult
    func jsonLines(_ name: String, count: Int) throws -> String {
        try write(name, (0..<count).map { "{\"id\":\"x\($0)\",\"value\":\($0)}\n" }.joined())
    }
}

enum JobsTest {
    static var logger: Logger {
        var logger = Logger(label: "flotilla.jobs.test")
        logger.logLevel = .critical
        return logger
    }

    /// A unique job id for a test.
    static func jobID(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(6).lowercased())" }

    /// A spec with one builtin stage and the given `inputs` YAML lines.
    static func spec(job: String, inputs: String, samplesPerShard: Int, extra: String = "") -> String {
        """
        job: \(job)
        inputs:
        \(inputs)
        shard:
          samples: \(samplesPerShard)
        stages:
          - name: echo
            builtin: identity
        \(extra)
        """
    }

    /// Loads a spec text written into `folder`.
    static func load(_ yaml: String, in folder: TemporaryFolder, name: String = "job.yaml") throws -> (config: JobConfig, path: String) {
        let path = try folder.write(name, yaml)
        return (try JobSpecLoader.load(path: path), path)
    }

    static func connection(_ fixture: BrokerFixture) -> BrokerConnection {
        BrokerConnection(bootstrapServers: fixture.bootstrapServers, timeout: .seconds(10))
    }

    /// Every record of `topics` (existing ones), read to their end by a group-less consumer.
    static func readAll(_ fixture: BrokerFixture, _ topics: [String]) async throws -> [KafkaMessage] {
        let existing = try await fixture.admin().metadata().topics
        let present = topics.filter { existing[$0] != nil }
        guard !present.isEmpty else { return [] }
        let reader = try await TopicReader(client: fixture.client, topics: present, logger: fixture.logger)
        let messages = try await reader.readToEnd(timeout: .seconds(20))
        await reader.close()
        return messages
    }

    /// Topic names on the broker that start with `prefix`.
    static func topics(_ fixture: BrokerFixture, prefix: String) async throws -> [String: Int32] {
        try await fixture.admin().metadata().topics.filter { $0.key.hasPrefix(prefix) }
    }

    /// A record as workers and the controller publish it: key, version and type headers.
    static func message<T: FlotillaRecord>(_ record: T, topic: String, key: String, partition: Int32? = nil, attempt: Int? = nil) -> OutgoingMessage {
        var headers = [KafkaHeader(RecordHeaders.version, "1"), KafkaHeader(RecordHeaders.type, T.recordType)]
        if let attempt { headers.append(KafkaHeader(RecordHeaders.attempt, String(attempt))) }
        return OutgoingMessage(topic: topic, partition: partition, key: key, value: RecordCodec.shared.encode(record), headers: headers)
    }

    /// Runs the built `flotilla` binary.
    static func flotilla(_ arguments: [String], directory: String? = nil) throws -> CommandRunner.Output {
        try CommandRunner.run([CommandRunner.flotillaExecutable] + arguments, directory: directory ?? CommandRunner.repositoryRoot)
    }
}
