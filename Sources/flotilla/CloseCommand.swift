import ArgumentParser
import FlotillaCore
import FlotillaJobs

/// `flotilla close ID`: end an open job once what was published so far is done.
struct CloseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "close",
        abstract: "Close an open job (mode: open): it ends once every shard published before the close is done.",
        discussion: """
            Publish the job's last shards first: the controller ends the job when every shard it has \
            read is done and no new one has arrived for a moment after the close. Closing a job \
            that is not open, or already over, exits 2.

            Example: flotilla close myjob --brokers 127.0.0.1:9092
            """
    )

    @Argument(help: "The job id.")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topic: JobTopicOptions

    func run() async throws {
        try await exitOnFlotillaError {
            let control = try JobControl(kafka, topic, job: job)
            _ = try await control.close()
            print("closed \(job): its controller ends the job once every shard published so far is done")
        }
    }
}
