import ArgumentParser
import FlotillaCore
import FlotillaJobs
import FlotillaKafka
import Foundation

/// `flotilla results ID`: every input sample's result exactly once, as JSON lines.
struct ResultsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "results",
        abstract: "Write a job's results as JSON lines, exactly one per input sample of every done shard.",
        discussion: """
            Each line is {"id":...,"output":...,"shard":...} or {"error":...,"id":...,"shard":...,"stage":...} \
            (keys sorted). \
            A summary goes to stderr. Exit 0 when every shard is done, 3 when the output is partial \
            (shards dead-lettered or not done yet). See docs/OPERATIONS.md.

            Example: flotilla results myjob --brokers 127.0.0.1:9092 --out results.jsonl
            """
    )

    @Argument(help: "The job id (the last line `flotilla submit` printed).")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topic: JobTopicOptions

    @Option(help: "Write the lines to this file (through a temporary file renamed into place) instead of stdout.")
    var out: String?

    func run() async throws {
        try await exitOnFlotillaError {
            let job = try validatedJobID(job)
            let summary = try await ResultsFile.write(job: job, prefix: try topic.validated(), connection: try kafka.connection(), to: out)
            printError(describe(summary))
            if !summary.isComplete { throw ExitCode(3) }
        }
    }

    private func describe(_ summary: ResultsSummary) -> String {
        var text = "results of \(summary.job): \(plural(summary.samples, "sample")) (\(summary.errors) errors) from \(summary.shardsDone) of \(plural(summary.shards, "shard")) done"
        if let out { text += "; written to \(out)" }
        if summary.isComplete { return text }
        var problems: [String] = []
        if !summary.deadShards.isEmpty {
            problems.append("\(summary.deadShards.count) dead-lettered (\(Self.list(summary.deadShards)))")
        }
        if !summary.missingShards.isEmpty {
            problems.append("\(summary.missingShards.count) not done (\(Self.list(summary.missingShards)))")
        }
        if !summary.incompleteShards.isEmpty {
            problems.append("\(summary.incompleteShards.count) done but still settling, some of their results not readable yet (\(Self.list(summary.incompleteShards)); run again)")
        }
        return text + "\nwarning: job \(summary.job) is incomplete: shards " + problems.joined(separator: ", ")
            + "; these shards' samples are not in the output"
    }

    /// At most ten ids, then "and N more".
    static func list(_ ids: [String]) -> String {
        ids.count <= 10 ? ids.joined(separator: ", ") : ids.prefix(10).joined(separator: ", ") + " and \(ids.count - 10) more"
    }
}

/// One output line: `id`, `output` or `error` (plus `stage`), and `shard`, keys sorted.
struct ResultLine: Encodable {
    let record: ResultRecord

    init(_ record: ResultRecord) { self.record = record }

    private enum Key: String, CodingKey { case id, output, error, stage, shard }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(record.id, forKey: .id)
        switch record.outcome {
        case .output(let value): try container.encode(value, forKey: .output)
        case .error(let message):
            try container.encode(message, forKey: .error)
            try container.encodeIfPresent(record.stage, forKey: .stage)
        }
        try container.encode(record.shard, forKey: .shard)
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        // Sorted keys: the same line for the same result on every read (and in every output object).
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Non-finite outputs cannot be JSON numbers; write them as strings rather than fail.
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return encoder
    }()

    func json() throws(FlotillaError) -> Data {
        do {
            var data = try Self.encoder.encode(self)
            data.append(0x0A)
            return data
        } catch {
            throw FlotillaError(.internal, "cannot encode the result of sample '\(record.id)'", underlying: error)
        }
    }
}

/// `flotilla run`'s results file: the job's results read through the reader rule, written
/// through a temporary file renamed into place.
enum ResultsFile {
    /// Writes a job's result lines to `path` (stdout when nil) by the reader rule; returns what was read.
    static func write(job: String, prefix: String, connection: BrokerConnection, to path: String?) async throws(FlotillaError) -> ResultsSummary {
        let reader = ResultsReader(connection: connection, prefix: prefix, job: job, logger: CommandLogging.kafkaLogger())
        let writer = try LineWriter(path: path)
        do {
            let summary = try await reader.read { result throws(FlotillaError) in try writer.write(ResultLine(result).json()) }
            try writer.finish()
            return summary
        } catch {
            writer.discard()
            throw error
        }
    }

    /// What a written file holds, for `run`'s closing lines.
    static func describe(_ summary: ResultsSummary, path: String) -> String {
        let partial = summary.isComplete ? "" : " (partial: \(summary.shardsDone) of \(plural(summary.shards, "shard")) done)"
        return "\(plural(summary.samples, "line")) (\(summary.errors) errors) in \(path)\(partial)"
    }
}

/// Buffered line output to stdout, or to a file written under a temporary name and renamed
/// into place by `finish` (so a reader never sees a half-written file).
final class LineWriter {
    private let handle: FileHandle
    private let path: String?
    private let temporaryPath: String?
    private var buffer = Data()
    private static let flushBytes = 1 << 16

    init(path: String?) throws(FlotillaError) {
        self.path = path
        guard let path else {
            handle = FileHandle.standardOutput
            temporaryPath = nil
            return
        }
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)").path
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw FlotillaError(.invalidConfiguration, "cannot write --out \(path): cannot create \(temporary) in its folder")
        }
        self.handle = handle
        temporaryPath = temporary
    }

    func write(_ line: Data) throws(FlotillaError) {
        buffer.append(line)
        if buffer.count >= Self.flushBytes { try flush() }
    }

    private func flush() throws(FlotillaError) {
        guard !buffer.isEmpty else { return }
        do {
            try handle.write(contentsOf: buffer)
        } catch {
            throw FlotillaError(.internal, "cannot write results to \(path ?? "stdout")", underlying: error)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered; renames the temporary file to `path`.
    func finish() throws(FlotillaError) {
        try flush()
        guard let path, let temporaryPath else { return }
        do {
            try handle.synchronize()
            try handle.close()
            if rename(temporaryPath, path) != 0 {
                throw FlotillaError(.internal, "cannot rename \(temporaryPath) to \(path): \(String(cString: strerror(errno)))")
            }
        } catch let error as FlotillaError {
            throw error
        } catch {
            throw FlotillaError(.internal, "cannot finish writing \(path)", underlying: error)
        }
    }

    /// Removes the temporary file after a failure.
    func discard() {
        guard let temporaryPath else { return }
        try? handle.close()
        try? FileManager.default.removeItem(atPath: temporaryPath)
    }
}
