import ArgumentParser
import FlotillaCore
import FlotillaJobs

/// `flotilla cancel ID`: stop every worker of a job and mark it cancelled.
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Cancel a job: tell every worker to stop and mark the job cancelled.",
        discussion: """
            Publishes a cancel command (target "*") and a cancelled manifest. A done or cancelled job \
            is left as it is.

            Example: flotilla cancel myjob --brokers 127.0.0.1:9092
            """
    )

    @Argument(help: "The job id.")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topic: JobTopicOptions

    func run() async throws {
        try await exitOnFlotillaError {
            let control = try JobControl(kafka, topic, job: job)
            switch try await control.cancel() {
            case .cancelled(let counts):
                print("job \(job) cancelled: \(counts.done) of \(plural(counts.shards, "shard")) were done (\(plural(counts.samples, "sample"))); workers stop")
            case .alreadyCancelled:
                print("job \(job) was already cancelled; nothing published")
            case .alreadyDone:
                print("job \(job) is already done; nothing to cancel")
            }
        }
    }
}
