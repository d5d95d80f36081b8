import FlotillaCore
import FlotillaKafka
import Logging

/// `flotilla cancel`, `scale` and `close`: commands published for the workers and the controller.
public struct JobControl: JobClient {
    public let access: JobAccess

    public init(access: JobAccess) { self.access = access }

    /// What `cancel` did.
    public enum CancelOutcome: Sendable, Hashable {
        /// The cancel command and a cancelled manifest (with the counts so far) were published.
        case cancelled(JobStatusSummary)
        /// The job was already cancelled; nothing was published.
        case alreadyCancelled
        /// The job is done; nothing was published.
        case alreadyDone
    }

    /// Publishes `cancel` for every worker (target `*`) on the control topic, then the job's
    /// manifest with status `cancelled` and the counts so far as its summary.
    public func cancel(reason: String = "cancelled by user") async throws(FlotillaError) -> CancelOutcome {
        let status = try await JobStatusReader(access: access).read()
        switch status.state {
        case .cancelled: return .alreadyCancelled
        case .done: return .alreadyDone
        case .submitted, .running, .failed: break
        }
        let producer = try RecordPublisher(connection: connection, maxMessageBytes: status.manifest.config.kafka.maxMessageBytes, logger: logger)
        let command = ControlRecord(job: topics.job, target: ControlRecord.allWorkers, command: .cancel, reason: reason)
        var manifest = status.manifest
        manifest.status = .cancelled
        manifest.updatedAt = Timestamp.now()
        manifest.summary = status.counts
        do {
            // The command first: workers stop even if the manifest write fails.
            try await producer.send(OutgoingRecord(command, topic: topics.control, key: command.target))
            try await producer.send(OutgoingRecord(manifest, topic: topics.jobs, key: topics.job, partition: 0))
        } catch {
            throw FlotillaError(.kafka, "cannot publish the cancellation of job '\(topics.job)'", underlying: error)
        }
        return .cancelled(status.counts)
    }

    /// Publishes `scale` with `workers` for the controller on the control topic. Returns the
    /// record and the fleet range from the manifest (the controller clamps to it).
    /// Asks the controller for `workers` (a fixed size), or with nil hands the size back to its autoscaler.
    public func scale(workers: Int?) async throws(FlotillaError) -> (record: ControlRecord, range: ClosedRange<Int>) {
        if let workers, workers < 0 {
            throw FlotillaError(.invalidConfiguration, "the number of workers must be >= 0, not \(workers)")
        }
        let manifest = try await JobStatusReader(access: access)
            .read().manifest
        if manifest.status == .done || manifest.status == .cancelled {
            throw FlotillaError(.invalidInput, "job '\(topics.job)' is \(manifest.status.rawValue); there is no fleet to scale")
        }
        let fleet = manifest.config.workers
        let record = ControlRecord(job: topics.job, target: ControlRecord.controller, command: .scale, workers: workers,
                                   reason: workers == nil ? "autoscale" : "scaled by user")
        let producer = try RecordPublisher(connection: connection, maxMessageBytes: manifest.config.kafka.maxMessageBytes, logger: logger)
        do {
            try await producer.send(OutgoingRecord(record, topic: topics.control, key: record.target))
        } catch {
            throw FlotillaError(.kafka, "cannot publish the scale command of job '\(topics.job)' to \(topics.control)", underlying: error)
        }
        return (record, min(fleet.min, fleet.max)...max(fleet.min, fleet.max))
    }

    /// Publishes `close` for the controller of an open job: it ends the job once every shard
    /// published before the close is done. Refused for a job that is not open, or already over.
    public func close() async throws(FlotillaError) -> ControlRecord {
        let manifest = try await JobStatusReader(access: access)
            .read().manifest
        guard manifest.config.mode == .open else {
            throw FlotillaError(.invalidInput, "job '\(topics.job)' is not open (mode: open in its spec); it ends by itself when its shards are done")
        }
        if manifest.status == .done || manifest.status == .cancelled {
            throw FlotillaError(.invalidInput, "job '\(topics.job)' is already \(manifest.status.rawValue)")
        }
        let record = ControlRecord(job: topics.job, target: ControlRecord.controller, command: .close, reason: "closed by user")
        let producer = try RecordPublisher(connection: connection, maxMessageBytes: manifest.config.kafka.maxMessageBytes, logger: logger)
        do {
            try await producer.send(OutgoingRecord(record, topic: topics.control, key: record.target))
        } catch {
            throw FlotillaError(.kafka, "cannot publish the close command of job '\(topics.job)' to \(topics.control)", underlying: error)
        }
        return record
    }
}
