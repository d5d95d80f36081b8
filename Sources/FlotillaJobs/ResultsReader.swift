import FlotillaCore
import FlotillaKafka
import Logging

/// Reads a job's results exactly once per sample (`flotilla results`).
///
/// Reads the acks topic to its end, then streams the results topic to its end through
/// `ResultLedger` (docs/PROTOCOL.md, "Reading results exactly once"): a result counts only when
/// its (`shard`, `attempt`, `run`) matches its shard's first done ack, once per sample id. Only
/// shards whose ack was read count; results of a shard acked after the acks were read are left
/// out, so the output is a consistent snapshot of done shards: a done shard whose results are not
/// all readable yet is read on for up to `settleTime`, and named in `incompleteShards` if it
/// still falls short. Also reads the DLQ and the manifest.
public struct ResultsReader: JobClient {
    public let access: JobAccess
    /// How long to read on for done shards whose results are not all readable yet.
    public var settleTime: Duration = .seconds(10)

    public init(access: JobAccess) { self.access = access }

    /// Calls `emit` once per counted result (one per input sample of every done shard), in the
    /// order the results topic yields them, and returns what was read.
    public func read(_ emit: (ResultRecord) throws(FlotillaError) -> Void) async throws(FlotillaError) -> ResultsSummary {
        let catalog = try await BrokerAdmin(connection: connection, logger: logger).catalog()
        // Pass 1: the manifest, the ack ledger and the dead letters. Pass 2: the results, which
        // then count at once or never (no result waits in memory for an ack). A fresh consumer
        // per pass: re-assigning one costs about a second in librdkafka.
        var ledger = LedgerPass(topics: topics)
        let ledgerScan = try RecordReader(connection: connection, pace: .catchUp, isolation: .committed, logger: logger)
        do throws(FlotillaError) {
            try await ledgerScan.scan([topics.jobs, topics.acks, topics.dlq], in: catalog) { record in
                ledger.add(record)
            }
        } catch {
            await ledgerScan.close()
            throw error
        }
        await ledgerScan.close()
        let manifest = try ledger.manifests.require(at: connection.bootstrapServers)

        var summary = ResultsSummary(job: topics.job, shards: manifest.shards, expectedSamples: manifest.samples)
        let resultsScan = try RecordReader(connection: connection, pace: .catchUp, isolation: .committed, logger: logger)
        // A done ack can be readable before all its results: a transaction's commit markers reach
        // the acks and results partitions at different moments, and a scan stops at each
        // partition's end as it was then. So a done shard short of results is read on (from where
        // the scan stopped) until it is complete or `settleTime` has passed.
        let settleDeadline = ContinuousClock.now + settleTime
        var positions: [TopicPartition: Int64] = [:]
        do throws(FlotillaError) {
            while true {
                positions = try await resultsScan.scan([topics.results], in: catalog, from: positions) { message throws(FlotillaError) in
                    for result in message.decodeResults(problems: &ledger.undecodable) {
                        guard let accepted = ledger.ledger.add(result: result) else { continue }
                        summary.samples += 1
                        if accepted.error != nil { summary.errors += 1 }
                        try emit(accepted)
                    }
                }
                guard !ledger.ledger.incompleteShards.isEmpty, ContinuousClock.now < settleDeadline else { break }
                summary.settleRounds += 1
                try? await Task.sleep(for: .milliseconds(200))
            }
        } catch {
            await resultsScan.close()
            throw error
        }
        await resultsScan.close()

        let ids = (0..<manifest.shards).map(ShardRecord.shardID(index:))
        let done = Set(ids.filter { ledger.ledger.winner(of: $0) != nil })
        summary.shardsDone = done.count
        summary.incompleteShards = ledger.ledger.incompleteShards
        let stats = ledger.ledger.stats
        summary.discarded = stats.discardedOtherRun + stats.discardedDuplicate + ledger.ledger.heldResults
        summary.undecodable = ledger.undecodable
        summary.deadRecords = ledger.deadRecords
        summary.deadShards = ledger.dead.subtracting(done).sorted()
        summary.missingShards = ids.filter { !done.contains($0) && !ledger.dead.contains($0) }
        if !summary.incompleteShards.isEmpty {
            logger.warning("done shards still short of results after reading on", metadata: [
                "flotilla.shards": "\(summary.incompleteShards.joined(separator: ","))",
            ])
        }
        return summary
    }
}

/// What the first pass of `ResultsReader` collects.
private struct LedgerPass {
    let topics: TopicNames
    var manifests: ManifestCollector
    var ledger = ResultLedger()
    var dead = Set<String>()
    var deadRecords = 0
    var undecodable = 0

    init(topics: TopicNames) {
        self.topics = topics
        manifests = ManifestCollector(topics: topics)
    }

    mutating func add(_ message: TopicRecord) {
        switch message.topic {
        case topics.acks:
            // No results are fed yet, so an ack releases nothing.
            if let ack = message.decode(AckRecord.self, problems: &undecodable) { _ = ledger.add(ack: ack) }
        case topics.dlq:
            guard let letter = message.decode(DeadLetterRecord.self, problems: &undecodable) else { return }
            if let shard = letter.shard { dead.insert(shard) } else { deadRecords += 1 }
        default:
            manifests.add(message, problems: &undecodable)
        }
    }
}

/// What `ResultsReader.read` found.
public struct ResultsSummary: Sendable, Hashable {
    public var job: String
    /// Shards in the job (the manifest's count).
    public var shards: Int
    /// Input samples, when the manifest knows them.
    public var expectedSamples: Int?
    /// Results handed out (lines written).
    public var samples = 0
    /// Of those, error results.
    public var errors = 0
    /// Shards with a done ack.
    public var shardsDone = 0
    /// Dead-lettered shards without a done ack, sorted.
    public var deadShards: [String] = []
    /// Shards neither done nor dead-lettered (still running, or lost), sorted.
    public var missingShards: [String] = []
    /// Done shards still short of the results their ack counts after `settleTime`, sorted.
    public var incompleteShards: [String] = []
    /// Extra reads of the results topic for done shards short of results (0 in a settled job).
    public var settleRounds = 0
    /// DLQ records without a shard (undecodable records).
    public var deadRecords = 0
    /// Results not handed out: other executions, duplicates, or shards without a done ack.
    public var discarded = 0
    /// Records on the acks, results or DLQ topics that could not be decoded.
    public var undecodable = 0

    public init(job: String, shards: Int, expectedSamples: Int?) {
        self.job = job
        self.shards = shards
        self.expectedSamples = expectedSamples
    }

    /// Every shard is done and every done shard gave all its results.
    public var isComplete: Bool {
        deadShards.isEmpty && missingShards.isEmpty && incompleteShards.isEmpty && shardsDone >= shards
    }
}
