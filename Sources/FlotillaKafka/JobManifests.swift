import FlotillaCore
import Logging

/// Collects the latest manifest of one job from the compacted `<p>.jobs` topic: the last record
/// keyed by the job id that decodes as its manifest, as compaction would keep it. Every reader
/// of manifests (the worker, the controller, the commands) goes through this one rule.
public struct ManifestCollector: Sendable {
    public let topics: TopicNames
    public private(set) var latest: JobManifest?
    /// Other jobs' latest manifests on the same jobs topic, by job id (when `collectOthers`).
    public private(set) var others: [String: JobManifest] = [:]
    private let collectOthers: Bool

    public init(topics: TopicNames, collectOthers: Bool = false) {
        self.topics = topics
        self.collectOthers = collectOthers
    }

    /// Feeds one record of any topic; only records on the jobs topic count. Returns the manifest
    /// when it was this job's.
    @discardableResult
    public mutating func add(_ record: TopicRecord, problems: inout Int) -> JobManifest? {
        guard record.topic == topics.jobs else { return nil }
        guard record.key == topics.job else {
            // Another job's: a record that does not decode is not ours to judge.
            if collectOthers, let other = try? record.decode(JobManifest.self) { others[other.job] = other }
            return nil
        }
        guard let manifest = record.decode(JobManifest.self, problems: &problems), manifest.job == topics.job else { return nil }
        latest = manifest
        return manifest
    }

    /// The latest manifest, or an error naming the job and topic when there is none.
    public func require(at bootstrapServers: String) throws(FlotillaError) -> JobManifest {
        guard let latest else {
            throw FlotillaError(
                .invalidInput,
                "no job '\(topics.job)' on \(topics.jobs) at \(bootstrapServers); check the job id, --brokers and --prefix")
        }
        return latest
    }

    /// The latest manifest of the job `topics` names, read from its jobs topic now.
    public static func load(_ topics: TopicNames, connection: BrokerConnection, logger: Logger) async throws(FlotillaError) -> JobManifest {
        // Manifests are never written in transactions, and a committed reader took ~1 s to reach
        // the end of this topic on the embedded broker (uncommitted: 0.06 s).
        let reader = try RecordReader(connection: connection, pace: .catchUp, isolation: .uncommitted, logger: logger)
        let outcome: Result<JobManifest, FlotillaError>
        do throws(FlotillaError) {
            let catalog = try await BrokerAdmin(connection: connection, logger: logger).topics()
            guard catalog[topics.jobs] != nil else {
                throw FlotillaError(.kafka, "cannot read the manifest of job '\(topics.job)': there is no \(topics.jobs) topic at \(connection.bootstrapServers) yet")
            }
            try await reader.read([topics.jobs], in: catalog)
            var collector = ManifestCollector(topics: topics)
            var problems = 0
            try await reader.forEach { record in collector.add(record, problems: &problems) }
            outcome = .success(try collector.require(at: connection.bootstrapServers))
        } catch {
            outcome = .failure(error)
        }
        await reader.close()
        return try outcome.get()
    }
}
