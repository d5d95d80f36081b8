import FlotillaCore
@testable import FlotillaKafka
import FlotillaTestSupport
import Foundation
import Logging
import Testing

/// The one reader behind scans, replays and tails, and the one decode path, against a real broker.
@Suite("Record reader and job records", .timeLimit(.minutes(1)))
struct RecordReaderTests {
    static func job(_ id: String) -> JobConfig {
        JobConfig(job: id, inputs: [.inline([])], stages: [StageConfig(name: "s", predictor: .builtin("identity"))], baseDirectory: "/")
    }

    /// A broker, a job `id` under a fresh topic prefix with its topics created, and the clients.
    static func setUp(_ id: String, partitions: Int = 0) async throws
        -> (fixture: BrokerFixture, connection: BrokerConnection, config: JobConfig, admin: BrokerAdmin, publisher: RecordPublisher) {
        let fixture = try await BrokerFixture()
        let connection = BrokerConnection(bootstrapServers: fixture.bootstrapServers)
        var config = job(id)
        config.kafka.topicPrefix = "p\(UUID().uuidString.prefix(6).lowercased())"
        config.kafka.partitions = partitions
        let admin = try BrokerAdmin(connection: connection, logger: fixture.logger)
        try await admin.createTopics(for: config)
        return (fixture, connection, config, admin, try RecordPublisher(connection: connection, logger: fixture.logger))
    }

    @Test("reads every partition to its end (empty ones too), and a later scan goes on from the positions it returned")
    func scansAndGoesOn() async throws {
        let (fixture, connection, config, admin, publisher) = try await Self.setUp("scan", partitions: 3)
        let topics = config.topics
        let shards = (0..<7).map { ShardRecord(job: "scan", shard: ShardRecord.shardID(index: $0), source: .inline([])) }
        try await publisher.send(shards.enumerated().map { OutgoingRecord($1, topic: topics.shards, key: $1.shard, partition: Int32($0 % 2)) })

        let reader = try RecordReader(connection: connection, pace: .catchUp, isolation: .committed, logger: fixture.logger)
        var catalog = try await admin.catalog()
        #expect(catalog[topics.shards] == 3)
        var seen: [String] = []
        let positions = try await reader.scan([topics.shards, topics.dlq, "no-such-topic"], in: catalog) { record throws(FlotillaError) in
            seen.append(try record.decode(ShardRecord.self).shard)
        }
        #expect(Set(seen) == Set(shards.map(\.shard)))
        #expect(positions[TopicPartition(topics.shards, 0)] == 4)
        #expect(positions[TopicPartition(topics.shards, 2)] == 0, "an empty partition's position is where it started")
        #expect(reader.caughtUp)

        let more = ShardRecord(job: "scan", shard: ShardRecord.shardID(index: 7), attempt: 1, source: .inline([]), reason: .stolen)
        try await publisher.send(OutgoingRecord(more, topic: topics.shards, key: more.shard, partition: 2, attempt: 1))
        catalog = try await admin.catalog()
        var later: [TopicRecord] = []
        try await reader.scan([topics.shards], in: catalog, from: positions) { later.append($0) }
        #expect(later.map(\.key) == [more.shard], "only what came after the first scan")
        #expect(later.first?.attempt == 1 && later.first?.recordType == ShardRecord.recordType)
        await reader.close()
    }

    @Test("readLast reads the end of a partition, in order, up to the last record (from the start where the broker's ListOffsets is wrong, as Tansu's is)")
    func readsTheLastRecords() async throws {
        let fixture = try await BrokerFixture()
        let connection = BrokerConnection(bootstrapServers: fixture.bootstrapServers)
        let topic = try await fixture.makeTopic("tail")
        let publisher = try RecordPublisher(connection: connection, logger: fixture.logger)
        let beats = (0..<30).map { ControllerHeartbeat(job: "j", controller: "c\($0)", host: "h", pid: 1, startedAt: 0) }
        try await publisher.send(beats.map { OutgoingRecord($0, topic: topic, key: ControllerHeartbeat.key) })
        let reader = try RecordReader(connection: connection, pace: .catchUp, isolation: .uncommitted, logger: fixture.logger)
        try await reader.readLast(5, of: [topic])
        let records = try await reader.readToEnd()
        let names = try records.map { try $0.decode(ControllerHeartbeat.self).controller }
        #expect(names.suffix(5) == (25..<30).map { "c\($0)" }, "\(names) at offsets \(records.map(\.offset))")
        #expect(names == (30 - names.count..<30).map { "c\($0)" }, "a contiguous run of the last records")
        await reader.close()
    }

    @Test("one decode path: by topic, key and type header; a record whose header names another type is refused")
    func decodesJobRecords() async throws {
        let (fixture, connection, config, admin, publisher) = try await Self.setUp("decode")
        let topics = config.topics
        let ack = AckRecord(job: "decode", shard: "s000000", attempt: 0, run: "r", worker: "w1", samples: 2, startedAt: 0)
        try await publisher.send([
            OutgoingRecord(ack, topic: topics.acks, key: ack.shard, attempt: 0),
            OutgoingRecord(SettleRecord(job: "decode", worker: "w1", reason: "idle"), topic: topics.acks, key: "w1"),
            OutgoingRecord(ControllerHeartbeat(job: "decode", controller: "c", host: "h", pid: 1, startedAt: 0), topic: topics.heartbeats, key: ControllerHeartbeat.key),
            OutgoingRecord(ack, topic: topics.heartbeats, key: "w1"),  // an ack where heartbeats belong
        ])
        let reader = try RecordReader(connection: connection, pace: .catchUp, isolation: .committed, logger: fixture.logger)
        try await reader.read([topics.acks, topics.heartbeats], in: try await admin.catalog())
        let records = try await reader.readToEnd().sorted { ($0.topic, $0.offset) < ($1.topic, $1.offset) }
        #expect(records.count == 4)
        var kinds: [String] = []
        for record in records {
            do {
                switch try record.jobRecord(in: topics) {
                case .ack(let decoded): kinds.append("ack \(decoded.shard)")
                case .settle: kinds.append("settle")
                case .controllerHeartbeat: kinds.append("controller")
                case .heartbeat: kinds.append("heartbeat")
                default: kinds.append("other")
                }
            } catch {
                kinds.append("refused: \(error.message)")
            }
        }
        #expect(kinds.contains("ack s000000") && kinds.contains("settle") && kinds.contains("controller"))
        #expect(kinds.contains { $0.hasPrefix("refused: heartbeat record: the record is a 'ack' record") }, "\(kinds)")
        await reader.close()
    }

    @Test("the latest manifest of a job wins; other jobs' manifests are told apart; a missing job is named")
    func manifests() async throws {
        let (fixture, connection, config, _, publisher) = try await Self.setUp("m1")
        var other = Self.job("m2")
        other.kafka.topicPrefix = config.kafka.topicPrefix
        let jobs = config.topics.jobs
        try await publisher.send([
            OutgoingRecord(JobManifest(config: config, shards: 1), topic: jobs, key: "m1"),
            OutgoingRecord(JobManifest(config: other, shards: 5), topic: jobs, key: "m2"),
            OutgoingRecord(JobManifest(config: config, shards: 1, status: .running), topic: jobs, key: "m1"),
        ])
        let latest = try await ManifestCollector.load(config.topics, connection: connection, logger: fixture.logger)
        #expect(latest.status == .running)
        let missing = await #expect(throws: FlotillaError.self) {
            _ = try await ManifestCollector.load(TopicNames(prefix: config.kafka.topicPrefix, job: "nope"), connection: connection, logger: fixture.logger)
        }
        #expect(missing?.message.contains("no job 'nope'") == true)
    }
}
