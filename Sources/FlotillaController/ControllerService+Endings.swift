import FlotillaCore
import FlotillaKafka

/// How a job run ends: complete, failed or cancelled, and stopping the fleet.
extension ControllerService {
    func finishCompleted(_ summary: JobStatusSummary, _ connection: Connection, _ run: inout ControllerRun) async throws -> ControllerOutcome {
        let summary = try await end(as: .done, summary, reason: "job complete", connection, &run)
        // Every winner is in place (completion waits for the acks): what is left never won.
        if let directory = run.manifest.config.outputs.directory { OutputDirectory(directory).removePending() }
        logger.info("job complete", metadata: [
            "flotilla.done": "\(summary.done)", "flotilla.dead": "\(summary.dead)", "flotilla.samples": "\(summary.samples)",
        ])
        return .completed(summary)
    }

    /// Stops a job that cannot succeed: a predictor that cannot start, or the error budget spent.
    func finishFailed(_ failure: JobFailure, _ connection: Connection, _ run: inout ControllerRun) async throws -> ControllerOutcome {
        var summary = run.ledger.summary(now: Timestamp.now())
        summary.failure = failure
        logger.error("job failed", metadata: ["flotilla.reason": "\(failure.kind.rawValue)", "flotilla.error": "\(failure.message)"])
        return .failed(try await end(as: .failed, summary, reason: "job failed: \(failure.kind.rawValue)", connection, &run))
    }

    /// The final manifest, a stop to every worker, the fleet stopped. Returns the summary with
    /// the controller's cost added.
    private func end(as status: JobStatus, _ summary: JobStatusSummary, reason: String, _ connection: Connection,
                     _ run: inout ControllerRun) async throws -> JobStatusSummary {
        var summary = summary
        summary.controller = run.cost.cost
        var manifest = run.manifest
        manifest.status = status
        manifest.summary = summary
        manifest.updatedAt = Timestamp.now()
        let stop = ControlRecord(job: options.job, target: ControlRecord.allWorkers, command: .stop, reason: reason)
        try await send([message(manifest, topic: connection.topics.jobs, key: options.job)], connection)
        try await send([message(stop, topic: connection.topics.control, key: ControlRecord.allWorkers)], connection)
        run.manifest = manifest
        await stopFleet(&run)
        board.update { $0.state = status.rawValue }
        return summary
    }

    func finishCancelled(reason: String, _ connection: Connection, _ run: inout ControllerRun) async throws -> ControllerOutcome {
        var summary = run.ledger.summary(now: Timestamp.now())
        summary.controller = run.cost.cost
        var records: [OutgoingRecord] = []
        if run.manifest.status != .cancelled {
            var manifest = run.manifest
            manifest.status = .cancelled
            manifest.summary = summary
            manifest.updatedAt = Timestamp.now()
            records.append(message(manifest, topic: connection.topics.jobs, key: options.job))
            run.manifest = manifest
        }
        try await send(records, connection)
        let cancel = ControlRecord(job: options.job, target: ControlRecord.allWorkers, command: .cancel, reason: reason)
        try await send([message(cancel, topic: connection.topics.control, key: ControlRecord.allWorkers)], connection)
        logger.warning("job cancelled", metadata: ["flotilla.reason": "\(reason)"])
        await stopFleet(&run)
        board.update { $0.state = "cancelled" }
        return .cancelled(summary)
    }

    /// SIGTERM to every worker, SIGKILL after the grace period.
    func stopFleet(_ run: inout ControllerRun) async {
        guard backend.managesWorkers else { return }
        await backend.stopAll(grace: options.stopGrace)
        run.fleet.stoppingAll()
    }
}
