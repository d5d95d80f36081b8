import ArgumentParser

/// The `flotilla` command: an elastic, fault-tolerant batch inference fleet driven by Kafka.
@main
struct Flotilla: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flotilla",
        abstract: "Elastic, fault-tolerant batch inference driven by Kafka.",
        subcommands: [BrokerCommand.self, SubmitCommand.self, StatusCommand.self, ResultsCommand.self, CancelCommand.self, ScaleCommand.self, ControllerCommand.self, WorkerCommand.self, RunCommand.self]
    )
}
