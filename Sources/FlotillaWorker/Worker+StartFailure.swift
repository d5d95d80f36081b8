import FlotillaCore
import Foundation
import RdKafka

extension Worker {
    /// Tells the controller why this worker cannot start, in one last heartbeat: the operator sees
    /// the reason at once, and the controller can stop a job that no restart will mend.
    /// Best effort: a broker that cannot be reached gets nothing, and the exit still happens.
    func reportStartFailure(_ error: FlotillaError, client: KafkaClientConfiguration) async {
        // A predictor or stage that cannot start fails the same way on the next try; a Kafka
        // error may pass (the broker restarting), so it is not held against the job.
        let permanent = [.predictor, .invalidConfiguration, .invalidInput].contains(error.code)
        let heartbeat = HeartbeatRecord(
            job: options.job, worker: options.workerID, host: ProcessInfo.processInfo.hostName, pid: Int(getpid()),
            state: .stopping, failure: WorkerFailure(message: error.message, permanent: permanent))
        let topic = TopicNames(prefix: options.topicPrefix, job: options.job).heartbeats
        do {
            let producer = try KafkaProducer(configuration: KafkaProducerConfiguration(client: client), logger: logger)
            try producer.enqueue(.record(heartbeat, topic: topic, key: options.workerID))
            try await producer.flush(timeout: .seconds(3))
        } catch {
            logger.warning("cannot report the start failure to the controller", metadata: ["flotilla.error": "\(error)"])
        }
    }
}
