import ArgumentParser
import EmbeddedBroker
import FlotillaCore
import Foundation
import ServiceLifecycle
import Synchronization

/// `flotilla broker`: the embedded Kafka-compatible broker in the foreground.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run the embedded Kafka-compatible broker (Tansu) in the foreground on 127.0.0.1.",
        discussion: """
            Everything is kept in memory: stopping the broker loses all topics. Stop with Ctrl-C or \
            SIGTERM.

            Example: flotilla broker --port 9092
            """
    )

    @Option(help: "TCP port to listen on (127.0.0.1).")
    var port: Int = 9092

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be between 1 and 65535") }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            guard !FreePort.accepts(port: port) else {
                throw FlotillaError(.invalidConfiguration, "port \(port) on 127.0.0.1 is already in use; choose another with --port")
            }
            let broker = try await EmbeddedBroker(port: port)
            print("flotilla broker listening on \(broker.bootstrapServers) (in memory; Ctrl-C stops it)")
            fflush(nil)  // scripts wait for this line; stdout to a pipe is block-buffered
            let service = BrokerService(broker: broker)
            let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint],
                                                          logger: CommandLogging.logger("flotilla.broker")))
            try await group.run()
            print("flotilla broker stopped")
        }
    }
}

/// The embedded broker as a service: runs until the broker process exits; a graceful shutdown
/// (SIGTERM, SIGINT) stops it. An exit nobody asked for is an error.
struct BrokerService: Service {
    let broker: EmbeddedBroker

    func run() async throws {
        let stopping = Mutex(false)
        let stop: @Sendable () -> Void = {
            stopping.withLock { $0 = true }
            broker.stop()
        }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                // Checked a few times a second: Dispatch on Linux has no process-exit source.
                while broker.isRunning { try await Task.sleep(for: .milliseconds(200)) }
            } onGracefulShutdown: { stop() }
        } onCancel: { stop() }
        if !stopping.withLock({ $0 }) { throw FlotillaError(.internal, "the embedded broker exited unexpectedly") }
    }
}
