import FlotillaCore
import FlotillaKafka
import Foundation

extension Worker {
    /// Tells the controller why this worker cannot start, in one last heartbeat: the operator sees
    /// the reason at once, and the controller can stop a job that no restart will mend.
    /// Best effort: a broker that cannot be reached gets nothing, and the exit still happens.
    func reportStartFailure(_ error: FlotillaError, connection: BrokerConnection) async {
        // A predictor or stage that cannot start fails the same way on the next try; a Kafka
        // error may pass (the broker restarting), so it is not held against the job.
        let permanent = [.predictor, .invalidConfiguration, .invalidInput].contains(error.code)
        let heartbeat = HeartbeatRecord(
            job: options.job, worker: options.workerID, host: ProcessInfo.processInfo.hostName, pid: Int(getpid()),
            state: .stopping, failure: WorkerFailure(message: error.message, permanent: permanent))
        await WorkerLink.reportStartFailure(heartbeat, topics: TopicNames(prefix: options.topicPrefix, job: options.job),
                                            connection: connection, logger: logger)
    }
}
