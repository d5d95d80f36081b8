import EmbeddedBroker
import FlotillaCore
import FlotillaTestSupport
import Foundation
import RdKafka

/// A job run the way an operator runs it: `flotilla submit`, then `flotilla controller` (which
/// starts real `flotilla worker` processes), against a real broker; faults injected with signals.
final class FleetHarness: @unchecked Sendable {
    // Mutated only by the test that owns the harness.
    let fixture: BrokerFixture
    let folder: String
    let job: String
    let samples: [String]
    let samplesPerShard: Int
    let specPath: String
    var controller: Process?
    /// Workers this test started itself (the `external` backend's fleet).
    var externalWorkers: [Process] = []
    /// What the latest controller wrote to stdout.
    var controllerOutput: String {
        (try? String(contentsOfFile: "\(folder)/\(Self.name("controller", start: starts)).out", encoding: .utf8)) ?? ""
    }

    /// - Parameters:
    ///   - stage: the predictor argv (YAML list) of the single stage, or `builtin: NAME`.
    ///   - maxWorkers: `workers.max` (it also sets the shards topic's partition count).
    ///   - workers: the `workers:` mapping's contents, replacing `min: 1, max: maxWorkers`.
    ///   - top: extra top-level spec lines (e.g. `mode: open`).
    init(samples count: Int, samplesPerShard: Int, stage: String, extraInputs: String = "", faults: String = "",
         maxWorkers: Int = 4, outputs: String = "", maxAttempts: Int = 3, workers: String? = nil, top: String = "") async throws {
        fixture = try await BrokerFixture()
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-fleet-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        job = "fleet-\(UUID().uuidString.prefix(8).lowercased())"
        self.samplesPerShard = samplesPerShard
        samples = (0..<count).map { String(format: "s%06d", $0) }
        let lines = samples.enumerated().map { #"{"id":"\#($1)","n":\#($0)}"# }.joined(separator: "\n") + "\n"
        try lines.write(toFile: "\(folder)/data.jsonl", atomically: true, encoding: .utf8)
        specPath = "\(folder)/job.yaml"
        let spec = """
            job: \(job)
            \(top)
            inputs:
              - file: data.jsonl
            \(extraInputs)
            shard: { samples: \(samplesPerShard) }
            stages:
              - name: model
                \(stage.hasPrefix("builtin:") ? stage : "predictor: \(stage)")
                batch: 10
                timeout: 5s
                env: { PYTHONPATH: \(CommandRunner.repositoryRoot)/python }
            \(outputs)
            workers: { \(workers ?? "min: 1, max: \(maxWorkers)") }
            faults: { maxAttempts: \(maxAttempts), heartbeat: 500ms, workerTimeout: 3s, shardTimeout: 30s\(faults) }
            """
        try spec.write(toFile: specPath, atomically: true, encoding: .utf8)
    }

    deinit {
        if let controller, controller.isRunning { kill(controller.processIdentifier, SIGKILL) }
        for worker in externalWorkers where worker.isRunning { kill(worker.processIdentifier, SIGKILL) }
        _ = try? CommandRunner.run(["pkill", "-9", "-f", "worker \(job) --brokers"])
    }

    var brokers: String { fixture.bootstrapServers }

    func submit() throws {
        let result = try CommandRunner.run([CommandRunner.flotillaExecutable, "submit", specPath, "--brokers", brokers])
        guard result.status == 0 else { throw HarnessError("submit failed (\(result.status)): \(result.stderr)") }
    }

    /// - Parameter workers: a fixed fleet size (`--workers`); nil leaves the size to the autoscaler.
    func startController(workers: Int?, extra: [String] = []) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandRunner.flotillaExecutable)
        process.arguments = ["controller", job, "--brokers", brokers, "--json", "--log-dir", "\(folder)/logs"]
            + (workers.map { ["--workers", String($0)] } ?? []) + extra
        starts += 1
        // One pair of files per controller: two processes writing one file would overwrite each other.
        let output = try Self.file("\(folder)/\(Self.name("controller", start: starts)).out")
        let errors = try Self.file("\(folder)/\(Self.name("controller", start: starts)).err")
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        controller = process
    }

    /// Starts `flotilla worker` as an operator would beside a controller with `--backend external`;
    /// it logs to `logs/ID.log`.
    func startWorker(id: String) throws -> Process {
        try FileManager.default.createDirectory(atPath: "\(folder)/logs", withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandRunner.flotillaExecutable)
        process.arguments = ["worker", job, "--brokers", brokers, "--worker-id", id]
        let log = try Self.file("\(folder)/logs/\(id).log")
        process.standardOutput = log
        process.standardError = log
        try process.run()
        externalWorkers.append(process)
        return process
    }

    /// Controllers started so far; the files of the n-th are `controller[-n].out/.err`.
    private(set) var starts = 0

    static func name(_ base: String, start: Int) -> String { start <= 1 ? base : "\(base)-\(start)" }

    /// The latest controller's /status, nil while it does not answer.
    func controllerStatus() -> [String: Any]? {
        let errors = controllerErrors(start: starts)
        guard let range = errors.range(of: "status at "), let end = errors[range.upperBound...].firstIndex(of: "\n"),
              let output = try? CommandRunner.run(["curl", "-s", "-m", "2", String(errors[range.upperBound..<end])]),
              output.status == 0 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]
    }

    /// What the `start`-th controller wrote to stderr.
    /// Every worker log of the run, one after another.
    func workerLogs() throws -> String {
        try FileManager.default.contentsOfDirectory(atPath: "\(folder)/logs")
            .map { (try? String(contentsOfFile: "\(folder)/logs/\($0)", encoding: .utf8)) ?? "" }.joined()
    }

    func controllerErrors(start: Int) -> String {
        (try? String(contentsOfFile: "\(folder)/\(Self.name("controller", start: start)).err", encoding: .utf8)) ?? ""
    }

    private static func file(_ path: String) throws -> FileHandle {
        FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw HarnessError("cannot write \(path)") }
        return handle
    }

    /// Waits for the controller to exit and returns its status.
    func waitForController(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while let controller, controller.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(controller.processIdentifier, SIGKILL)
                let errors = controllerErrors(start: starts).split(separator: "\n").suffix(15).joined(separator: "\n")
                throw HarnessError("the controller did not finish within \(timeout); output: \(controllerOutput); stderr ends: \(errors); folder \(folder)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return controller?.terminationStatus ?? -1
    }

    /// Process ids of this job's worker processes.
    func workerPIDs() throws -> [Int32] {
        let result = try CommandRunner.run(["pgrep", "-f", "worker \(job) --brokers"])
        return result.stdout.split(separator: "\n").compactMap { Int32($0) }
    }

    /// Done acks seen so far.
    func doneShards() async throws -> Int {
        let reader = try await TopicReader(client: fixture.client, topics: [TopicNames(job: job).acks], logger: fixture.logger)
        defer { Task { await reader.close() } }
        let acks = try await reader.readToEnd().compactMap { try? RecordCodec.shared.decode(AckRecord.self, from: $0.value) }
        return Set(acks.filter { $0.status == .done }.map(\.shard)).count
    }

    func waitForDoneShards(atLeast count: Int, timeout: Duration) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await doneShards() < count {
            guard ContinuousClock.now < deadline else { throw HarnessError("fewer than \(count) shards done within \(timeout)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// `flotilla results`: the lines and the exit status.
    func results(timeout: Int = 10) throws -> (lines: [[String: Any]], status: Int32) {
        let result = try CommandRunner.run([CommandRunner.flotillaExecutable, "results", job, "--brokers", brokers, "--timeout", String(timeout)])
        let lines = result.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        return (lines, result.status)
    }

    /// The controller's one-line JSON summary.
    func summary() -> [String: Any]? {
        guard let line = controllerOutput.split(separator: "\n").last(where: { $0.hasPrefix("{") }) else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }

    /// The reader rule applied to a raw read_committed read of the acks and results topics,
    /// read on (as `flotilla results` does) while a done shard is short of results: a
    /// transaction's markers reach the acks and results partitions at different moments.
    func rawReaderResults(settleTime: Duration = .seconds(10)) async throws -> [ResultRecord] {
        let topics = TopicNames(job: job)
        let deadline = ContinuousClock.now + settleTime
        while true {
            let reader = try await TopicReader(client: fixture.client, topics: [topics.acks, topics.results], logger: fixture.logger)
            let messages = try await reader.readToEnd()
            await reader.close()
            var ledger = ResultLedger()
            var selected: [ResultRecord] = []
            for message in messages where message.topic == topics.acks {
                if let ack = try? RecordCodec.shared.decode(AckRecord.self, from: message.value) { selected += ledger.add(ack: ack) }
            }
            for message in messages where message.topic == topics.results {
                for result in (try? RecordCodec.shared.decodeResults(from: message.value, type: nil)) ?? [] {
                    if let accepted = ledger.add(result: result) { selected.append(accepted) }
                }
            }
            if ledger.incompleteShards.isEmpty || ContinuousClock.now >= deadline { return selected }
            settleRounds += 1
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Extra rounds `rawReaderResults` read for done shards short of results.
    private(set) var settleRounds = 0

    /// Why a raw read missed samples: per missing shard, its acks and the results records of each
    /// execution, from a read_committed and a read_uncommitted re-read, and each partition's end.
    func rawReaderDiagnosis(missing: Set<String>) async throws -> String {
        let topics = TopicNames(job: job)
        let index = Dictionary(uniqueKeysWithValues: samples.enumerated().map { ($1, $0) })
        var report: [String] = ["missing \(missing.count): \(missing.sorted().prefix(20))"]
        for isolation in [KafkaConsumerConfiguration.IsolationLevel.readCommitted, .readUncommitted] {
            let reader = try await TopicReader(client: fixture.client, topics: [topics.acks, topics.results], isolation: isolation, logger: fixture.logger)
            let messages = try await reader.readToEnd()
            await reader.close()
            var ends: [String: Int64] = [:]
            for message in messages { ends["\(message.topicPartition)", default: -1] = max(ends["\(message.topicPartition)", default: -1], message.offset) }
            report.append("\(isolation): \(messages.count) records; last offsets read \(ends.sorted { $0.key < $1.key })")
            let shards = Set(missing.compactMap { index[$0] }.map { ShardRecord.shardID(index: $0 / samplesPerShard) })
            for shard in shards.sorted() {
                for message in messages where message.topic == topics.acks {
                    if let ack = try? RecordCodec.shared.decode(AckRecord.self, from: message.value), ack.shard == shard {
                        report.append("  \(shard) ack @\(message.offset): \(ack.status) attempt \(ack.attempt) run \(ack.run) samples \(ack.samples)")
                    }
                }
                for message in messages where message.topic == topics.results {
                    let results = (try? RecordCodec.shared.decodeResults(from: message.value, type: nil)) ?? []
                    let mine = results.filter { $0.shard == shard }
                    guard let first = mine.first else { continue }
                    let gone = mine.filter { missing.contains($0.id) }.count
                    report.append("  \(shard) results \(message.topicPartition)@\(message.offset): attempt \(first.attempt) run \(first.run) \(mine.count) samples, \(gone) of them missing")
                }
            }
        }
        let admin = try fixture.admin()
        let metadata = try await admin.metadata()
        for topic in [topics.acks, topics.results] {
            for partition in 0..<(metadata.topics[topic] ?? 0) {
                let marks = try await admin.watermarks(TopicPartition(topic, partition))
                report.append("watermarks \(topic)[\(partition)]: \(marks)")
            }
        }
        return report.joined(separator: "\n")
    }

    /// Re-enqueued shard records (attempt > 0) by reason.
    func reEnqueueReasons() async throws -> [String: Int] {
        let reader = try await TopicReader(client: fixture.client, topics: [TopicNames(job: job).shards], logger: fixture.logger)
        defer { Task { await reader.close() } }
        let records = try await reader.readToEnd().compactMap { try? RecordCodec.shared.decode(ShardRecord.self, from: $0.value) }
        return Dictionary(grouping: records.filter { $0.attempt > 0 }, by: \.reason.rawValue).mapValues(\.count)
    }

    /// Results records on another partition than one of their shard's records' modulo
    /// `resultPartitions` (where a worker writes them, docs/PROTOCOL.md).
    func resultsOffTheirShardPartition(resultPartitions: Int32) async throws -> [String] {
        let topics = TopicNames(job: job)
        let reader = try await TopicReader(client: fixture.client, topics: [topics.shards, topics.results], logger: fixture.logger)
        defer { Task { await reader.close() } }
        var shardPartitions: [String: Set<Int32>] = [:]
        var results: [(shard: String, partition: Int32)] = []
        for message in try await reader.readToEnd() {
            let shard = message.keyString ?? ""
            if message.topic == topics.shards { shardPartitions[shard, default: []].insert(message.partition) } else { results.append((shard, message.partition)) }
        }
        return results.filter { result in !(shardPartitions[result.shard] ?? []).contains { $0 % resultPartitions == result.partition } }
            .map { "\($0.shard)@\($0.partition)" }
    }

    /// The job's acks, in topic order.
    func acks() async throws -> [AckRecord] {
        let reader = try await TopicReader(client: fixture.client, topics: [TopicNames(job: job).acks], logger: fixture.logger)
        defer { Task { await reader.close() } }
        return try await reader.readToEnd().compactMap { try? RecordCodec.shared.decode(AckRecord.self, from: $0.value) }
    }

    /// The job's dead-letter records.
    func deadLetters() async throws -> [DeadLetterRecord] {
        let reader = try await TopicReader(client: fixture.client, topics: [TopicNames(job: job).dlq], logger: fixture.logger)
        defer { Task { await reader.close() } }
        return try await reader.readToEnd().compactMap { try? RecordCodec.shared.decode(DeadLetterRecord.self, from: $0.value) }
    }

    /// Publishes raw bytes into the shards topic, as a misbehaving producer would.
    func publishGarbage(_ value: [UInt8]) async throws {
        try await fixture.producer().send(OutgoingMessage(topic: TopicNames(job: job).shards, partition: 0, key: "garbage", value: value))
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
