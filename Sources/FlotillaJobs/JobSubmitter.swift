import FlotillaCore
import FlotillaKafka
import FlotillaSources
import Foundation
import Logging

/// Plans and publishes a job: `flotilla submit` (docs/OPERATIONS.md, docs/PROTOCOL.md "Submission").
///
/// `plan` shards every input and checks every shard record against `kafka.maxMessageBytes`, so an
/// input problem is found before anything is published. `submit` checks the broker, refuses a job
/// id that already has a manifest (unless resuming), creates the job's topics, publishes every
/// shard record and then, last, the manifest: a manifest on `<p>.jobs` implies all shards are out.
public struct JobSubmitter: Sendable {
    public var logger: Logger
    public var http: HTTPOptions
    /// Signs the manifest when set (`ManifestSignature`).
    public var signer: ManifestSignature?

    public init(logger: Logger, http: HTTPOptions = HTTPOptions()) {
        self.logger = logger
        self.http = http
    }

    /// The bytes of inline samples one shard record may carry: `kafka.maxMessageBytes` less room
    /// for the other fields, key, headers and Kafka's per-record overhead (a tenth, at least
    /// 4 KiB or half of small limits): 900 000 of the default 1 000 000.
    static func inlineBudget(maxMessageBytes: Int) -> Int {
        maxMessageBytes - max(maxMessageBytes / 10, min(4_096, maxMessageBytes / 2))
    }

    /// Bytes a record takes beyond its value: key, headers and librdkafka's framing (generous).
    static let recordOverhead = 512

    /// Shards every input with `config.shard.samples` samples per shard.
    public func plan(_ config: JobConfig) async throws(FlotillaError) -> SubmitPlan {
        var shards: [ShardRecord] = []
        var inputs: [PlannedInput] = []
        let createdAt = Timestamp.now()
        let perShard = config.shard.samples
        for (index, input) in config.inputs.enumerated() {
            let first = shards.count
            var counts: [Int] = []
            var sources: [ShardSource] = []
            let kind: String
            let location: String
            var bytes: Int64?
            switch input {
            case .lines(let input):
                let plan = switch input.location {
                case .file(let path):
                    try await FileSharder.planInBackground(
                        path: path, format: input.format, idField: input.idField,
                        samplesPerShard: perShard, maxSampleBytes: config.shard.maxSampleBytes)
                case .url(let url):
                    try await HTTPSharder.plan(
                        url: url, format: input.format, idField: input.idField,
                        samplesPerShard: perShard, maxSampleBytes: config.shard.maxSampleBytes,
                        options: http, logger: logger)
                }
                sources = plan.ranges.map { .lines($0) }
                counts = plan.sampleCounts
                (kind, location, bytes) = (input.location.isFile ? "file" : "url", input.location.name, plan.bytes)
            case .inline(let samples):
                let groups = try InlineSharder.shard(
                    samples: samples, samplesPerShard: perShard,
                    maxRecordBytes: Self.inlineBudget(maxMessageBytes: config.kafka.maxMessageBytes))
                sources = groups.map { .inline($0) }
                counts = groups.map(\.count)
                (kind, location) = ("inline", "\(samples.count) inline samples")
            }
            for (offset, source) in sources.enumerated() {
                shards.append(ShardRecord(
                    job: config.job, shard: ShardRecord.shardID(index: shards.count), attempt: 0,
                    source: source, samples: counts[offset], reason: .initial, createdAt: createdAt))
            }
            inputs.append(PlannedInput(
                position: index + 1, kind: kind, location: location, samples: counts.reduce(0, +),
                shards: sources.count, bytes: bytes, firstShard: first))
            logger.debug("planned input", metadata: [
                LoggingKeys.job: "\(config.job)", "flotilla.input": "\(location)", "flotilla.shards": "\(sources.count)",
            ])
        }
        try checkSizes(shards, config: config)
        return SubmitPlan(config: config, shards: shards, inputs: inputs)
    }

    /// Every shard record must fit in one Kafka record of `kafka.maxMessageBytes`.
    private func checkSizes(_ shards: [ShardRecord], config: JobConfig) throws(FlotillaError) {
        let limit = config.kafka.maxMessageBytes
        for shard in shards {
            let size = RecordCodec.shared.encode(shard).count + Self.recordOverhead
            guard size <= limit else {
                throw FlotillaError(
                    .invalidInput,
                    "shard \(shard.shard) (\(shard.source.planDescription)) needs a \(size)-byte Kafka record, over kafka.maxMessageBytes (\(limit)); raise kafka.maxMessageBytes or lower shard.samples")
            }
        }
    }

    /// Publishes `plan` to the brokers of `connection`.
    /// - Parameter resume: accept a job id that was submitted before: publish nothing when its
    ///   manifest exists, or finish an interrupted submission (missing shards, then the manifest).
    public func submit(_ plan: SubmitPlan, to connection: BrokerConnection, resume: Bool = false) async throws(FlotillaError) -> SubmitReport {
        let started = ContinuousClock.now
        let config = plan.config
        let topics = plan.topics
        var logger = logger
        logger[metadataKey: LoggingKeys.job] = "\(config.job)"
        let connection = connection.adding(jobProperties: config.kafka.properties)
        let admin = try BrokerAdmin(connection: connection, logger: logger)
        var catalog = try await admin.catalog()
        // One pass over the jobs and shards topics: an existing manifest, and shard records of
        // an interrupted earlier submission.
        let reader = try RecordReader(connection: connection, pace: .catchUp, isolation: .committed, logger: logger)
        var manifests = ManifestCollector(topics: topics)
        var found = PresentShards(plan: plan)
        var problems = 0
        do throws(FlotillaError) {
            try await reader.scan([topics.jobs, topics.shards], in: catalog) { record in
                manifests.add(record, problems: &problems)
                found.add(record, problems: &problems)
            }
        } catch {
            await reader.close()
            throw error
        }
        await reader.close()

        if let manifest = manifests.latest {
            guard resume else {
                throw FlotillaError(
                    .invalidConfiguration,
                    "job '\(config.job)' was already submitted (\(manifest.shards) shards, status \(manifest.status.rawValue), manifest on \(topics.jobs)); pass --resume to continue it without publishing anything, or give the job a new id")
            }
            logger.info("job already submitted; resuming publishes nothing")
            return SubmitReport(job: config.job, topics: topics, shardPartitions: Int(catalog[topics.shards] ?? 0),
                                shardsPublished: 0, shardsAlreadyPresent: plan.shards.count, manifestPublished: false,
                                alreadySubmitted: true, seconds: started.duration(to: .now).seconds)
        }
        if let changed = found.changed {
            throw FlotillaError(
                .invalidInput,
                "shard \(changed) on \(topics.shards) does not match the plan: the inputs or shard.samples changed since the earlier submit; submit under a new job id")
        }
        let present = found.ids
        if !present.isEmpty && !resume {
            throw FlotillaError(
                .invalidConfiguration,
                "an earlier submit of job '\(config.job)' stopped before its manifest: \(present.count) of \(plan.shards.count) shards are on \(topics.shards); pass --resume to publish the rest and the manifest")
        }

        catalog = try await admin.createTopics(for: config)
        let partitionCount = catalog[topics.shards] ?? 1

        let publisher = try RecordPublisher(connection: connection, maxMessageBytes: config.kafka.maxMessageBytes, logger: logger)
        await publisher.prepare(for: [topics.shards, topics.jobs])
        var records: [OutgoingRecord] = []
        for (index, shard) in plan.shards.enumerated() where !present.contains(shard.shard) {
            records.append(OutgoingRecord(shard, topic: topics.shards, key: shard.shard,
                                          partition: SubmitPlan.partition(ofShardAt: index, partitions: Int(partitionCount)),
                                          attempt: shard.attempt))
        }
        do {
            try await publisher.send(records)
        } catch {
            throw FlotillaError(.kafka, "publishing \(records.count) shard records to \(topics.shards) failed; nothing was marked submitted, run again with --resume", underlying: error)
        }
        logger.debug("published shards", metadata: ["flotilla.count": "\(records.count)"])

        // The manifest last: its presence means every shard is published.
        var manifest = Self.fitting(plan.manifest(), limit: config.kafka.maxMessageBytes - Self.recordOverhead)
        if let signer { manifest = signer.sign(manifest) }
        do {
            try await publisher.send(OutgoingRecord(manifest, topic: topics.jobs, key: config.job, partition: 0))
        } catch {
            throw FlotillaError(.kafka, "publishing the manifest of job '\(config.job)' to \(topics.jobs) failed; run again with --resume", underlying: error)
        }
        return SubmitReport(job: config.job, topics: topics, shardPartitions: Int(partitionCount),
                            shardsPublished: records.count, shardsAlreadyPresent: present.count, manifestPublished: true,
                            alreadySubmitted: false, seconds: started.duration(to: .now).seconds)
    }

    /// The manifest, with inline samples left out of its config when the whole would not fit one
    /// record (the samples travel in the shard records; the manifest keeps the stages and settings).
    static func fitting(_ manifest: JobManifest, limit: Int) -> JobManifest {
        guard RecordCodec.shared.encode(manifest).count > limit else { return manifest }
        var trimmed = manifest
        trimmed.config.inputs = manifest.config.inputs.map { input in
            if case .inline = input { return .inline([]) }
            return input
        }
        return trimmed
    }
}

/// What `JobSubmitter.submit` did.
public struct SubmitReport: Sendable, Hashable {
    public var job: String
    public var topics: TopicNames
    /// Partitions of the shards topic.
    public var shardPartitions: Int
    /// Shard records published by this call.
    public var shardsPublished: Int
    /// Shard records found already published (resume).
    public var shardsAlreadyPresent: Int
    public var manifestPublished: Bool
    /// The job had a manifest already; nothing was published (`--resume`).
    public var alreadySubmitted: Bool
    public var seconds: Double
}

/// Initial shard records already on the shards topic (an interrupted submission), checked against
/// the plan: a different source under the same shard id means the input changed.
struct PresentShards {
    private let planned: [String: ShardRecord]
    private let topic: String
    private(set) var ids = Set<String>()
    private(set) var changed: String?

    init(plan: SubmitPlan) {
        planned = Dictionary(plan.shards.map { ($0.shard, $0) }, uniquingKeysWith: { first, _ in first })
        topic = plan.topics.shards
    }

    mutating func add(_ message: TopicRecord, problems: inout Int) {
        guard message.topic == topic, let record = message.decode(ShardRecord.self, problems: &problems), record.attempt == 0 else { return }
        if let expected = planned[record.shard], expected.source == record.source {
            ids.insert(record.shard)
        } else if changed == nil {
            changed = record.shard
        }
    }
}
