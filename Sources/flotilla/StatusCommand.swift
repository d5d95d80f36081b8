import ArgumentParser
import FlotillaCore
import FlotillaJobs
import Foundation
import Synchronization

/// `flotilla status ID`: a job's state and counts, read from its topics.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a job's state: shards done, failed and dead-lettered, samples done.",
        discussion: """
            With --watch, refreshes every 2 s until the job is done or cancelled, or Ctrl-C, and \
            shows the controller's live rate and ETA (the figures of its /status) while it runs. \
            Exit 0, or 3 when the job is done with dead-lettered shards. See docs/OPERATIONS.md.

            Example: flotilla status myjob --brokers 127.0.0.1:9092 --watch
            """
    )

    @Argument(help: "The job id.")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topic: JobTopicOptions

    @Flag(help: "Print one JSON object (one per refresh with --watch).")
    var json = false

    @Flag(help: "Refresh every 2 s until the job is done or cancelled (Ctrl-C stops watching).")
    var watch = false

    func run() async throws {
        try await exitOnFlotillaError {
            let reader = JobStatusReader(connection: try kafka.connection(), prefix: try topic.validated(),
                                         job: try validatedJobID(job), logger: CommandLogging.kafkaLogger())
            guard watch else {
                let report = try await reader.read()
                try show(report)
                if report.state == .done && report.counts.dead > 0 { throw ExitCode(3) }
                return
            }
            let interrupted = WatchInterrupt()
            let sources = [SIGINT, SIGTERM].map { number in
                signal(number, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
                source.setEventHandler { interrupted.flag.store(true, ordering: .relaxed) }
                source.resume()
                return source
            }
            defer { sources.forEach { $0.cancel() } }
            let last = try await reader.watch(interval: .seconds(2), stop: { interrupted.flag.load(ordering: .relaxed) }) { report throws(FlotillaError) in
                try show(report)
            }
            if last.state == .done && last.counts.dead > 0 { throw ExitCode(3) }
        }
    }

    private func show(_ report: JobStatusReport) throws(FlotillaError) {
        // Each refresh reaches a pipe at once (`--watch --json | jq`): stdout to a pipe is block-buffered.
        defer { fflush(nil) }
        if json {
            print(try JSONOutput.line(StatusJSON(report)))
            return
        }
        let c = report.counts
        let expected = report.manifest.samples.map { " of \($0)" } ?? ""
        print("job \(c.job): \(report.state.rawValue)")
        print("  shards: \(c.shards) total, \(c.done) done, \(report.failedShards) failed (retrying), \(c.dead) dead-lettered, \(report.pendingShards) pending")
        print("  samples: \(c.samples)\(expected) done, \(c.failedSamples) with errors; \(String(format: "%.1f", c.seconds)) s, \(String(format: "%.1f", c.samplesPerSecond)) samples/s")
        if let live = report.live {
            let eta = live.etaSeconds.map { ProgressDisplay.format(.milliseconds(Int64($0 * 1_000))) } ?? "-"
            print("  now (the controller's /status): \(live.samplesDone) samples done, \(String(format: "%.0f", live.samplesPerSecond)) samples/s, ETA \(eta)")
        }
        if c.reEnqueued > 0 || c.duplicates > 0 {
            print("  re-enqueued attempts: \(c.reEnqueued), duplicate executions: \(c.duplicates)")
        }
        if let cpu = c.workerCPU, let perSample = cpu.microsPerSample {
            print("  worker CPU: \(String(format: "%.1f", cpu.seconds)) s, \(String(format: "%.1f", perSample)) µs/sample, \(String(format: "%.2f", cpu.millisPerShard ?? 0)) ms/shard")
        }
        if let summary = report.manifest.summary {
            print("  final summary (\(report.manifest.status.rawValue)): \(summary.done) of \(plural(summary.shards, "shard")) done, \(summary.dead) dead, \(plural(summary.samples, "sample")) (\(summary.failedSamples) errors) in \(String(format: "%.1f", summary.seconds)) s")
        }
    }
}

/// The `--json` object: the summary fields (`job, shards, done, dead, samples, failedSamples,
/// seconds, samplesPerSecond, reEnqueued, duplicates`) plus `state`, `failed`, `pending`,
/// `expectedSamples`, once the manifest has one the final `summary`, and with `--watch` while the
/// controller runs the job `live` (`samplesDone`, `samplesPerSecond`, `etaSeconds`: its `/status`).
private struct StatusJSON: Encodable {
    let report: JobStatusReport
    init(_ report: JobStatusReport) { self.report = report }

    private enum Key: String, CodingKey { case state, failed, pending, expectedSamples, summary, updatedAt, live }

    func encode(to encoder: any Encoder) throws {
        try report.counts.encode(to: encoder)
        var container = encoder.container(keyedBy: Key.self)
        try container.encode(report.state.rawValue, forKey: .state)
        try container.encode(report.failedShards, forKey: .failed)
        try container.encode(report.pendingShards, forKey: .pending)
        try container.encodeIfPresent(report.manifest.samples, forKey: .expectedSamples)
        try container.encodeIfPresent(report.manifest.summary, forKey: .summary)
        try container.encode(report.manifest.updatedAt, forKey: .updatedAt)
        try container.encodeIfPresent(report.live, forKey: .live)
    }
}

/// Set by SIGINT or SIGTERM while `status --watch` runs: watching stops after the current refresh.
private final class WatchInterrupt: Sendable {
    let flag = Atomic(false)
}
