import ArgumentParser
import FlotillaCore
import FlotillaJobs

/// `flotilla scale ID N`: ask the job's controller for N workers.
struct ScaleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Ask a job's controller to run N workers (clamped to the spec's workers.min...workers.max).",
        discussion: """
            Publishes a scale command for the controller on the job's control topic; the controller \
            acts on it.

            Example: flotilla scale myjob 8 --brokers 127.0.0.1:9092
            """
    )

    @Argument(help: "The job id.")
    var job: String

    @Argument(help: "The wanted number of workers.")
    var workers: Int

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topic: JobTopicOptions

    func run() async throws {
        try await exitOnFlotillaError {
            let control = JobControl(connection: try kafka.connection(), prefix: try topic.validated(),
                                     job: try validatedJobID(job), logger: CommandLogging.kafkaLogger())
            let (record, range) = try await control.scale(workers: workers)
            print("asked the controller of \(job) for \(plural(workers, "worker")) (\(control.topics.control), target \(record.target))")
            if !range.contains(workers) {
                let clamped = min(max(workers, range.lowerBound), range.upperBound)
                printError("warning: the job's spec allows \(range.lowerBound)...\(plural(range.upperBound, "worker")); the controller will run \(clamped)")
            }
        }
    }
}
