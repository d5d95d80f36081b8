import ArgumentParser
import FlotillaCore
import FlotillaJobs
import FlotillaPredictor
import FlotillaSpec
import Foundation

/// `flotilla submit JOB.yaml`: validates the spec, shards the inputs and publishes the job.
struct SubmitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "submit",
        abstract: "Validate a job spec, shard its inputs and publish the shards and the job manifest.",
        discussion: """
            Prints a short plan and the job id as the last line. A job id that already has a manifest \
            is refused (exit 2) unless --resume is given, which publishes nothing new for it (or \
            finishes a submission that stopped before its manifest). Without --brokers, the spec's \
            kafka.brokers is used. See docs/OPERATIONS.md.

            Example: flotilla submit config/examples/quickstart.yaml --brokers 127.0.0.1:9092
            """
    )

    @Argument(help: "The job spec (YAML).", completion: .file(extensions: ["yaml", "yml"]))
    var spec: String

    @OptionGroup var kafka: KafkaOptions

    @Flag(help: "Print the shard plan (one line per shard) and publish nothing; no broker needed.")
    var dryRun = false

    @Flag(help: "Accept a job id submitted before: publish nothing new, or finish an interrupted submit.")
    var resume = false

    @Flag(help: "Print one JSON object (with the job id as \"job\") instead of the text summary.")
    var json = false

    func run() async throws {
        try await exitOnFlotillaError {
            let logger = CommandLogging.logger("flotilla.submit")
            let config = try JobSpecLoader.load(path: spec, builtins: Set(BuiltinPredictors.names))
            // Checked before sharding, so a missing --brokers costs no input scan.
            let connection = dryRun ? nil : try kafka.connection(fallback: config.kafka.brokers, specHasBrokers: true)
            let submitter = JobSubmitter(logger: logger)
            let plan = try await submitter.plan(config)
            if dryRun {
                if json {
                    print(try jsonLine(plan: plan, report: nil))
                    return
                }
                for (index, shard) in plan.shards.enumerated() {
                    print("\(shard.shard) partition \(SubmitPlan.partition(ofShardAt: index, partitions: config.shardPartitions)) \(shard.source.planDescription) samples \(shard.samples.map(String.init) ?? "?")")
                }
                printSummary(plan)
                print("dry run: nothing published")
                print(plan.job)
                return
            }
            guard let connection else { return }
            var kafkaSubmitter = submitter
            kafkaSubmitter.logger = CommandLogging.kafkaLogger()
            kafkaSubmitter.signer = try ManifestSignature.fromEnvironment()
            let report = try await kafkaSubmitter.submit(plan, to: connection, resume: resume)
            if json {
                print(try jsonLine(plan: plan, report: report))
                return
            }
            printSummary(plan)
            if report.alreadySubmitted {
                print("job \(plan.job) was already submitted; --resume: nothing published")
            } else {
                let resumed = report.shardsAlreadyPresent > 0 ? " (\(report.shardsAlreadyPresent) were already there)" : ""
                print("published \(plural(report.shardsPublished, "shard"))\(resumed) over \(plural(report.shardPartitions, "partition")) and the manifest to \(connection.bootstrapServers) in \(String(format: "%.2f", report.seconds)) s")
            }
            print(plan.job)
        }
    }

    private func printSummary(_ plan: SubmitPlan) {
        let config = plan.config
        print("job \(plan.job): \(plan.inputs.count) input\(plan.inputs.count == 1 ? "" : "s"), \(plural(plan.samples, "sample")), \(plural(plan.shards.count, "shard")) (up to \(plural(config.shard.samples, "sample")) each)")
        for input in plan.inputs {
            let bytes = input.bytes.map { ", \($0) bytes" } ?? ""
            print("  input \(input.position): \(input.kind) \(input.location): \(plural(input.samples, "sample")), \(plural(input.shards, "shard"))\(bytes)")
        }
        let topics = plan.topics
        print("topics: \(topics.shards) (\(plural(config.shardPartitions, "partition"))), \(topics.results) (\(plural(config.resultPartitions, "partition"))), \(topics.acks), \(topics.heartbeats), \(topics.control), \(topics.dlq); manifest on \(topics.jobs)")
    }

    private func jsonLine(plan: SubmitPlan, report: SubmitReport?) throws(FlotillaError) -> String {
        var object: [String: JSONValue] = [
            "job": .string(plan.job),
            "samples": .int(Int64(plan.samples)),
            "shards": .int(Int64(plan.shards.count)),
            "inputs": .array(plan.inputs.map { input in
                .object([
                    "kind": .string(input.kind), "location": .string(input.location),
                    "samples": .int(Int64(input.samples)), "shards": .int(Int64(input.shards)),
                ])
            }),
            "topics": .object([
                "jobs": .string(plan.topics.jobs), "shards": .string(plan.topics.shards), "results": .string(plan.topics.results),
                "acks": .string(plan.topics.acks), "heartbeats": .string(plan.topics.heartbeats),
                "control": .string(plan.topics.control), "dlq": .string(plan.topics.dlq),
            ]),
            "dryRun": .bool(report == nil),
        ]
        if let report {
            object["published"] = .int(Int64(report.shardsPublished))
            object["alreadyPresent"] = .int(Int64(report.shardsAlreadyPresent))
            object["alreadySubmitted"] = .bool(report.alreadySubmitted)
            object["partitions"] = .int(Int64(report.shardPartitions))
            object["seconds"] = .double(report.seconds)
        }
        return try JSONOutput.line(JSONValue.object(object))
    }
}

/// One-line JSON for command output: sorted keys, slashes unescaped.
enum JSONOutput {
    static func line(_ value: some Encodable) throws(FlotillaError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return String(decoding: try encoder.encode(value), as: UTF8.self)
        } catch {
            throw FlotillaError(.internal, "cannot encode the output as JSON", underlying: error)
        }
    }
}
