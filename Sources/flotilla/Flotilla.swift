import ArgumentParser

/// The `flotilla` command: an elastic, fault-tolerant batch inference fleet driven by Kafka.
@main
struct Flotilla: AsyncParsableCommand {
    /// What `flotilla --version` prints.
    static let version = "0.2.0"

    static let configuration = CommandConfiguration(
        commandName: "flotilla",
        abstract: "Elastic, fault-tolerant batch inference driven by Kafka.",
        version: "flotilla \(version)",
        subcommands: [BrokerCommand.self, SubmitCommand.self, StatusCommand.self, ResultsCommand.self, CancelCommand.self, CloseCommand.self, ScaleCommand.self, ControllerCommand.self, WorkerCommand.self, RunCommand.self]
    )
}
