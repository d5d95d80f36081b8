import ArgumentParser
import FlotillaCore
import FlotillaJobs

/// `flotilla scale ID N`: fix the job's fleet at N workers; `flotilla scale ID --auto`: let the
/// controller's autoscaler choose again.
struct ScaleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scale",
        abstract: "Fix a job's fleet at N workers (clamped to workers.min...workers.max), or hand it back to the autoscaler.",
        discussion: """
            Publishes a scale command for the controller on the job's control topic; the controller \
            acts on it. A fixed size stays until the next scale command (a restarted controller reads \
            it too); `--auto` lets the autoscaler choose within workers.min...workers.max again.

            Examples: flotilla scale myjob 8 --brokers 127.0.0.1:9092
                      flotilla scale myjob --auto --brokers 127.0.0.1:9092
            """
    )

    @Argument(help: "The job id.")
    var job: String

    @Argument(help: "The wanted number of workers.")
    var workers: Int?

    @Flag(help: "Let the autoscaler choose the size again (from the backlog and the workers' speed).")
    var auto = false

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topic: JobTopicOptions

    func validate() throws {
        guard (workers == nil) == auto else { throw ValidationError("give either a number of workers or --auto") }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            let control = try JobControl(kafka, topic, job: job)
            let (record, range) = try await control.scale(workers: workers)
            guard let workers else {
                print("asked the controller of \(job) to autoscale within \(range.lowerBound)...\(plural(range.upperBound, "worker")) (\(control.topics.control), target \(record.target))")
                return
            }
            print("asked the controller of \(job) for \(plural(workers, "worker")) (\(control.topics.control), target \(record.target))")
            if !range.contains(workers) {
                let clamped = min(max(workers, range.lowerBound), range.upperBound)
                printError("warning: the job's spec allows \(range.lowerBound)...\(plural(range.upperBound, "worker")); the controller will run \(clamped)")
            }
        }
    }
}
