import FlotillaCore
import Logging

/// Reads every partition of a job's topics from the beginning (no consumer group), and says when
/// each has been read to its end once: the controller's replay, then its tail.
///
/// Three readers: the shards topic (its many partitions) and the ledger topics written in
/// transactions or rarely (acks, control, DLQ) apart from the few partitions the fleet's liveness
/// depends on (heartbeats, jobs). One fetch covering them all took ~200 ms on a loaded Tansu with
/// 86 partitions, and heartbeats then reached the controller more slowly than ten workers sent
/// them: the fleet looked lost (measured).
public final class JobTopicsReader: Sendable {
    public let topics: TopicNames
    private let main: RecordReader
    private let shards: RecordReader
    /// Acks, control and DLQ. Acks are published in transactions, so this reader is committed: it
    /// must not count an aborted one. The others are uncommitted: a committed reader took 0.5–1 s
    /// to reach their ends on the embedded broker (uncommitted: 0.06 s), which every start paid.
    private let ledger: RecordReader
    private let connection: BrokerConnection
    private let logger: Logger

    public init(connection: BrokerConnection, topics: TopicNames, logger: Logger) throws(FlotillaError) {
        self.connection = connection
        self.topics = topics
        self.logger = logger
        main = try RecordReader(connection: connection, pace: .replay, isolation: .uncommitted, maxFetchKilobytes: 1024, logger: logger)
        shards = try RecordReader(connection: connection, pace: .shardsTail, isolation: .uncommitted, maxFetchKilobytes: 1024, logger: logger)
        ledger = try RecordReader(connection: connection, pace: .replay, isolation: .committed, maxFetchKilobytes: 1024, logger: logger)
    }

    /// The topics read, in the order their records should be applied when several are ready.
    public var names: [String] { [topics.jobs, topics.shards, topics.control, topics.acks, topics.heartbeats, topics.dlq] }

    /// Waits until the topics (`only`, else all of `names`) exist, up to `timeout`, then reads all
    /// their partitions from the start. Returns the partitions read.
    public func readAll(admin: BrokerAdmin, only: [String]? = nil, timeout: Duration) async throws(FlotillaError) -> Set<TopicPartition> {
        let wanted = only ?? names
        let deadline = ContinuousClock.now + timeout
        while true {
            let catalog = try await admin.topics()
            let missing = wanted.filter { (catalog[$0] ?? 0) == 0 }
            if missing.isEmpty {
                let quiet = [topics.acks, topics.control, topics.dlq]
                let split = [(main, wanted.filter { $0 != topics.shards && !quiet.contains($0) }),
                             (shards, wanted.filter { $0 == topics.shards }), (ledger, wanted.filter { quiet.contains($0) })]
                // The three in parallel: each loads its topics' metadata before it assigns.
                let read = await withTaskGroup(of: Result<Set<TopicPartition>, FlotillaError>.self) { group in
                    for (reader, names) in split {
                        group.addTask {
                            do throws(FlotillaError) {
                                return .success(try await reader.read(names, in: catalog))
                            } catch {
                                return .failure(error)
                            }
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                var partitions = Set<TopicPartition>()
                for outcome in read { partitions.formUnion(try outcome.get()) }
                return partitions
            }
            if ContinuousClock.now >= deadline {
                throw FlotillaError(.invalidInput, "topic(s) \(missing.joined(separator: ", ")) do not exist on the brokers; submit the job first (flotilla submit JOB.yaml --brokers B)")
            }
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    /// What the readers have: the shards' and the ledger's ready events, then the others'
    /// (waiting up to `timeout` when nothing was ready).
    public func poll(timeout: Duration) async throws(FlotillaError) -> [TopicEvent] {
        let ready = try await shards.poll(maxEvents: 2_000, timeout: .zero) + ledger.poll(maxEvents: 2_000, timeout: .zero)
        return try await ready + main.poll(maxEvents: 2_000, timeout: ready.isEmpty ? timeout : .zero)
    }

    /// Who wrote the record at `offset` of acks `partition`, as an uncommitted reader sees it (the
    /// first record of the transaction that holds a committed reader there), and what it is.
    /// Nil if none arrives within `timeout`.
    public func uncommittedWriter(_ partition: TopicPartition, at offset: Int64, timeout: Duration = .seconds(5)) async -> (worker: String, record: String)? {
        guard let reader = try? RecordReader(connection: connection, pace: .replay, isolation: .uncommitted, logger: logger) else { return nil }
        defer { Task { await reader.close() } }
        guard (try? await reader.read([TopicPartitionOffset(partition.topic, partition.partition, offset)])) != nil else { return nil }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            for case .record(let record) in (try? await reader.poll(timeout: .milliseconds(100))) ?? [] where record.offset >= offset {
                if record.isSettle, let settle = try? record.decode(SettleRecord.self) {
                    return (settle.worker, "a settle record")
                }
                return (try? record.decode(AckRecord.self)).map { ($0.worker, "the ack of \($0.shard)") }
            }
        }
        return nil
    }

    public func close() async {
        await main.close()
        await shards.close()
        await ledger.close()
    }
}
