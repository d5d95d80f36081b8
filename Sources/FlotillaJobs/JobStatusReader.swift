import FlotillaCore
import FlotillaKafka
import Logging

/// Reads a job's state from its topics (`flotilla status`): the latest manifest on `<p>.jobs`, the
/// acks (the completion ledger, first done ack per shard wins), the DLQ and the shards topic
/// (for re-enqueued attempts). Read-only; every call reads the topics again from the start.
public struct JobStatusReader: JobClient {
    public let access: JobAccess

    public init(access: JobAccess) { self.access = access }

    /// The job's current status; fails with `.invalidInput` when the job has no manifest.
    public func read() async throws(FlotillaError) -> JobStatusReport {
        try await session { read throws(FlotillaError) in try await read() }
    }

    /// Reads the status every `interval` and hands each report to `show`, until the job's state
    /// is final (returns that report) or `stop` says so (returns the last report). One set of
    /// Kafka clients serves every refresh. Each report carries the controller's live figures
    /// (`live`) while it sends them.
    public func watch(
        interval: Duration = .seconds(2), stop: @escaping @Sendable () -> Bool,
        _ show: (JobStatusReport) throws(FlotillaError) -> Void
    ) async throws(FlotillaError) -> JobStatusReport {
        let live = await ControllerProgressReader.open(connection: connection, topics: topics, logger: logger)
        let outcome: Result<JobStatusReport, FlotillaError>
        do throws(FlotillaError) {
            outcome = .success(try await session { read throws(FlotillaError) in
                while true {
                    var report = try await read()
                    if !report.isFinal { report.live = await live?.current() }
                    try show(report)
                    if report.isFinal || stop() { return report }
                    let next = ContinuousClock.now + interval
                    while ContinuousClock.now < next {
                        if stop() { return report }
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                }
            })
        } catch {
            outcome = .failure(error)
        }
        await live?.close()
        return try outcome.get()
    }

    /// Runs `body` with a function that reads the status through one admin client and one scan.
    private func session<T>(
        _ body: (() async throws(FlotillaError) -> JobStatusReport) async throws(FlotillaError) -> T
    ) async throws(FlotillaError) -> T {
        let admin = try BrokerAdmin(connection: connection, logger: logger)
        let scan = try RecordReader(connection: connection, pace: .catchUp, isolation: .committed, logger: logger)
        let outcome: Result<T, FlotillaError>
        do throws(FlotillaError) {
            outcome = .success(try await body { () throws(FlotillaError) in
                return try await read(scan: scan, catalog: try await admin.catalog())
            })
        } catch {
            outcome = .failure(error)
        }
        await scan.close()
        return try outcome.get()
    }

    /// One read of the manifest, acks, DLQ and shards topics, in a single pass.
    func read(scan: RecordReader, catalog: TopicCatalog) async throws(FlotillaError) -> JobStatusReport {
        var manifests = ManifestCollector(topics: topics)
        var ledger = ResultLedger()
        var failedShards = Set<String>()
        var dead = Set<String>()
        var deadRecords = 0
        var reEnqueued = 0
        var undecodable = 0
        try await scan.scan([topics.jobs, topics.acks, topics.dlq, topics.shards], in: catalog) { message in
            switch message.topic {
            case topics.acks:
                guard let ack = message.decode(AckRecord.self, problems: &undecodable) else { return }
                if ack.status == .failed { failedShards.insert(ack.shard) }
                _ = ledger.add(ack: ack)
            case topics.dlq:
                guard let letter = message.decode(DeadLetterRecord.self, problems: &undecodable) else { return }
                if let shard = letter.shard { dead.insert(shard) } else { deadRecords += 1 }
            case topics.shards:
                // The attempt header spares decoding every shard record.
                if let attempt = message.attempt, attempt > 0 {
                    reEnqueued += 1
                }
            default:
                manifests.add(message, problems: &undecodable)
            }
        }
        let manifest = try manifests.require(at: connection.bootstrapServers)

        let ids = (0..<manifest.shards).map(ShardRecord.shardID(index:))
        let winners = ids.compactMap { ledger.winner(of: $0) }
        let doneIDs = Set(winners.map(\.shard))
        let samples = winners.reduce(0) { $0 + $1.samples }
        let failedSamples = winners.reduce(0) { $0 + $1.errorSamples }
        let lastAck = winners.map(\.finishedAt).max()
        let seconds = lastAck.map { max(0, Double($0 - manifest.createdAt) / 1_000) } ?? 0
        let deadCount = dead.subtracting(doneIDs).count
        let counts = JobStatusSummary(
            job: manifest.job, shards: manifest.shards, done: doneIDs.count, dead: deadCount, samples: samples,
            failedSamples: failedSamples, seconds: seconds, reEnqueued: reEnqueued, duplicates: ledger.stats.duplicateAcks)
        return JobStatusReport(
            manifest: manifest, counts: counts,
            failedShards: failedShards.subtracting(doneIDs).subtracting(dead).count,
            deadRecords: deadRecords, undecodable: undecodable,
            anyActivity: !winners.isEmpty || !failedShards.isEmpty || reEnqueued > 0 || deadCount > 0)
    }
}

/// A job's state as `flotilla status` shows it.
public struct JobStatusReport: Sendable, Hashable {
    /// The latest manifest of the job.
    public var manifest: JobManifest
    /// Counts from the ledger read now (the manifest's `summary` is the controller's final word).
    public var counts: JobStatusSummary
    /// Shards with a failed execution and, so far, neither a done ack nor a dead letter.
    public var failedShards: Int
    /// DLQ records without a shard id (undecodable records).
    public var deadRecords: Int
    /// Records on the read topics that could not be decoded.
    public var undecodable: Int
    /// Whether any shard was acked, failed, re-enqueued or dead-lettered.
    public var anyActivity: Bool
    /// The controller's live rate and ETA (its `/status`), when watching and it sends them.
    public var live: ControllerProgress?

    public init(manifest: JobManifest, counts: JobStatusSummary, failedShards: Int, deadRecords: Int, undecodable: Int, anyActivity: Bool) {
        self.manifest = manifest
        self.counts = counts
        self.failedShards = failedShards
        self.deadRecords = deadRecords
        self.undecodable = undecodable
        self.anyActivity = anyActivity
    }

    /// The job's state: the manifest's when it is final (done, cancelled, failed); done once every shard is
    /// done or dead-lettered; running once a controller took it or any shard moved; else submitted.
    public var state: JobStatus {
        switch manifest.status {
        case .cancelled, .done, .failed: return manifest.status
        case .running, .submitted:
            if manifest.shards > 0 && counts.done + counts.dead >= manifest.shards { return .done }
            if manifest.status == .running || anyActivity { return .running }
            return .submitted
        }
    }

    /// Whether the state will not change any more.
    /// (A failed job changes only when a new controller tries it again.)
    public var isFinal: Bool { state == .done || state == .cancelled || state == .failed }

    /// Shards neither done nor dead-lettered.
    public var pendingShards: Int { max(0, counts.shards - counts.done - counts.dead) }
}
