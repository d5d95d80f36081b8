import FlotillaKafka
import FlotillaCore
import Logging
import ServiceLifecycle

extension ControllerService {
    /// Tails the topics and ticks until the job completes, is cancelled, or shutdown is asked.
    func loop(_ connection: Connection, _ run: inout ControllerRun) async throws -> ControllerOutcome? {
        switch run.manifest.status {
        case .done:
            board.update { $0.state = "done" }
            return .completed(run.manifest.summary ?? run.ledger.summary(now: Timestamp.now()))
        case .cancelled:
            board.update { $0.state = "cancelled" }
            return .cancelled(run.manifest.summary ?? run.ledger.summary(now: Timestamp.now()))
        case .submitted, .running, .failed:
            break  // a failed job is tried again by a new controller (its cause may be mended)
        }
        if run.manifest.status != .running {
            var manifest = run.manifest
            manifest.status = .running
            manifest.updatedAt = Timestamp.now()
            try await send([message(manifest, topic: connection.topics.jobs, key: options.job)], connection)
            run.manifest = manifest
        }
        board.update { $0.state = "running" }
        logger.info("running the job", metadata: ["flotilla.shards": "\(run.manifest.shards)", "flotilla.workers": "\(run.fleet.desired)"])

        var nextTick = ContinuousClock.now
        var lastPass = ContinuousClock.now
        while true {
            // A pass normally takes a few tens of ms; a long one means this process was stalled.
            let gap = ContinuousClock.now - lastPass
            lastPass = ContinuousClock.now
            if gap > .seconds(1) {
                logger.warning("the controller was stalled; not counting the stall against workers",
                               metadata: ["flotilla.stall-ms": "\(gap.milliseconds)"])
                run.ledger.controllerStalled(for: gap.milliseconds, now: Timestamp.now())
            }
            if Task.isCancelled || Task.isShuttingDownGracefully {
                logger.info("shutting down: stopping the fleet; a new controller will carry on")
                await stopFleet(&run)
                return nil
            }
            if let reason = run.cancelled {
                return try await finishCancelled(reason: reason, connection, &run)
            }
            if let other = run.otherController {
                try await yield(to: other.beat, tookOver: other.tookOver, &run)
            }
            sendHeartbeatIfDue(connection, &run)
            let wait = max(.milliseconds(1), min(.milliseconds(50), nextTick - ContinuousClock.now))
            for event in try await connection.reader.poll(timeout: wait) {
                switch event {
                case .record(let record): apply(record, to: &run, replaying: false)
                case .end(let partition, let offset) where partition.topic == connection.topics.acks:
                    run.reachedAcksEnd(partition, offset)
                case .end: break
                }
            }
            guard ContinuousClock.now >= nextTick else { continue }
            let tickStart = ContinuousClock.now
            nextTick = tickStart + options.tickInterval
            let now = Timestamp.now()
            // Measured before the fleet's upkeep, which the autoscaler's rate feeds; a tick changes no done count.
            let samplesDone = run.ledger.samplesDone
            run.rate.add(done: samplesDone, at: now)
            var actions = try await maintainFleet(&run, connection, now: now)
            actions += run.ledger.tick(now: now)
            actions += await checkHeldAcks(&run, connection, now: now)
            if !run.undecodable.isEmpty {
                try await send(run.undecodable.map { message($0.letter, topic: connection.topics.dlq, key: $0.key) }, connection)
                run.undecodable = []
            }
            let completed = try await execute(actions, connection, &run, now: now)
            let tickTime = ContinuousClock.now - tickStart
            run.cost.tick(took: tickTime)
            updateBoard(run, samplesDone: samplesDone, now: now, tickTime: tickTime)
            if run.heartbeatLagMs > run.ledger.settings.workerTimeoutMs / 2 {
                logger.warning("heartbeats reach the controller late", metadata: ["flotilla.lag-ms": "\(run.heartbeatLagMs)"])
            }
            run.heartbeatLagMs = 0
            if let completed {
                return try await finishCompleted(completed, connection, &run)
            }
            if let failure = run.fleet.cannotStart ?? run.ledger.errorBudgetFailure {
                return try await finishFailed(failure, connection, &run)
            }
        }
    }

    // MARK: - Actions

    /// Publishes what the ledger decided and replaces workers. Returns the summary on completion.
    func execute(_ actions: [LedgerAction], _ connection: Connection, _ run: inout ControllerRun,
                 now: Int64) async throws -> JobStatusSummary? {
        guard !actions.isEmpty else { return nil }
        let topics = connection.topics
        var deadLetters: [OutgoingRecord] = []
        var controls: [OutgoingRecord] = []
        var shards: [ShardRecord] = []
        var takes: [OutgoingRecord] = []
        var shardPartitions: [Int?] = []
        var replacements: [String] = []
        var completed: JobStatusSummary?
        for action in actions {
            logger.info("ledger action", metadata: ["flotilla.action": "\(action.name)"])
            switch action {
            case .reEnqueue(let record, let partition, let supersede):
                if supersede {
                    let control = ControlRecord(job: options.job, target: ControlRecord.allWorkers, command: .supersede,
                                                shard: record.shard, attempt: record.attempt, reason: record.reason.rawValue, time: now)
                    controls.append(message(control, topic: topics.control, key: ControlRecord.allWorkers))
                }
                shards.append(record)
                shardPartitions.append(partition)
            case .deadLetter(let shard, let attempt, let reason):
                let letter = DeadLetterRecord(job: options.job, shard: shard, attempt: attempt, reason: reason, from: "controller", time: now)
                deadLetters.append(message(letter, topic: topics.dlq, key: shard, attempt: attempt))
                let control = ControlRecord(job: options.job, target: ControlRecord.allWorkers, command: .supersede,
                                            shard: shard, attempt: attempt + 1, reason: "dead-lettered", time: now)
                controls.append(message(control, topic: topics.control, key: ControlRecord.allWorkers))
            case .abandon(let worker, let shard, let attempt):
                let control = ControlRecord(job: options.job, target: worker, command: .abandon, shard: shard, attempt: attempt,
                                            reason: ShardReason.leaseExpired.rawValue, time: now)
                controls.append(message(control, topic: topics.control, key: worker))
            case .take(let worker, let shard, let attempt, let partition, let offset):
                let control = ControlRecord(job: options.job, target: worker, command: .take, shard: shard, attempt: attempt,
                                            partition: partition, offset: offset, reason: ControlRecord.warmStartReason, time: now)
                takes.append(message(control, topic: topics.control, key: worker))
            case .replaceWorker(let worker, _):
                replacements.append(worker)
            case .settle(let reason):
                let control = ControlRecord(job: options.job, target: ControlRecord.allWorkers, command: .settle, reason: reason, time: now)
                controls.append(message(control, topic: topics.control, key: ControlRecord.allWorkers))
            case .complete(let summary):
                completed = summary
            }
        }
        // Dead letters before their supersede, and supersedes before the records they announce,
        // so a controller that dies in between leaves something the next one can finish.
        try await send(deadLetters, connection)
        try await send(controls, connection)
        await sendTakes(takes, connection)
        let deliveries = try await send(zip(shards, shardPartitions).map { record, partition in
            message(record, topic: topics.shards, key: record.shard, partition: partition, attempt: record.attempt)
        }, connection)
        await sendTakes(for: Array(zip(shards, deliveries)), connection, run, now: now)

        var more: [LedgerAction] = []
        for worker in replacements {
            guard backend.managesWorkers, let slot = run.fleet.slots[worker], slot.running, !slot.draining else { continue }
            // A process younger than the silence (or stall) that condemned the worker id is not the
            // one that failed: a replacement already runs, e.g. after a controller restart.
            let settings = run.ledger.settings
            guard now - slot.startedAt >= min(settings.workerTimeoutMs, settings.shardTimeoutMs) else { continue }
            do {
                _ = try await backend.replace(worker: worker)
                run.fleet.replaced(worker, now: now)
                logger.warning("replaced worker", metadata: [LoggingKeys.worker: "\(worker)"])
            } catch {
                logger.error("cannot replace worker", metadata: [LoggingKeys.worker: "\(worker)", "flotilla.error": "\(error)"])
                run.fleet.replaceFailed(worker, now: now)
            }
            more += run.ledger.workerGone(worker, now: now)
        }
        if !more.isEmpty, let later = try await execute(more, connection, &run, now: now) { return later }
        return completed
    }

    /// Carries out the `FleetPlanner`'s upkeep: exits noticed, restarts, scale-out and scale-in.
    /// Returns what the ledger decided about workers that are gone.
    func maintainFleet(_ run: inout ControllerRun, _ connection: Connection, now: Int64) async throws -> [LedgerAction] {
        guard backend.managesWorkers else { return [] }
        if run.fleet.autoscaling, now >= run.nextAutoscale {
            run.nextAutoscale = now + 1_000  // the backlog walks every shard: once a second is enough
            let backlog = run.ledger.backlog
            run.fleet.autoscale(samplesLeft: backlog.samples ?? backlog.shards * run.manifest.config.shard.samples,
                                shardsLeft: backlog.shards, fleetRate: run.rate.rate,
                                busyWorkers: run.ledger.busyWorkers, now: now)
            if let decision = run.fleet.autoscaler.decisions.last, decision.time == now {
                logger.info("autoscaler", metadata: [
                    "flotilla.from": "\(decision.from)", "flotilla.to": "\(decision.to)", "flotilla.reason": "\(decision.reason)",
                    "flotilla.samples-left": "\(decision.samplesLeft)", "flotilla.shards-left": "\(decision.shardsLeft)",
                    "flotilla.rate": "\(decision.ratePerWorker)", "flotilla.startup-s": "\(decision.startupSeconds)",
                ])
            }
        }
        let settings = run.ledger.settings
        let pods = await backend.list()
        var actions: [LedgerAction] = []
        var drains: [OutgoingRecord] = []
        for action in run.fleet.plan(pods: pods, drainLimitMs: settings.shardTimeoutMs + settings.workerTimeoutMs, now: now) {
            switch action {
            case .forget(let id):
                await backend.forget(worker: id)
            case .workerGone(let id):
                let pod = pods.first { $0.id == id }
                logger.warning("worker exited", metadata: [LoggingKeys.worker: "\(id)", "flotilla.status": "\(pod?.exitStatus.map(String.init) ?? "?")",
                                                           "flotilla.reason": "\(pod?.exitReason ?? "")"])
                actions += run.ledger.workerGone(id, now: now)
            case .retire(let id):
                run.ledger.retire(id)
            case .drain(let id):
                let control = ControlRecord(job: options.job, target: id, command: .drain, reason: "scale down", time: now)
                drains.append(message(control, topic: connection.topics.control, key: id))
            case .stop(let id):
                logger.warning("a draining worker ran past its drain limit; stopping it", metadata: [LoggingKeys.worker: "\(id)"])
                await backend.stop(worker: id, grace: options.stopGrace)
            case .start(let id):
                do {
                    _ = try await backend.start(worker: id)
                    run.fleet.started(id, now: now)
                    run.ledger.workerStarting(id)
                } catch {
                    logger.error("cannot start worker", metadata: [LoggingKeys.worker: "\(id)", "flotilla.error": "\(error)"])
                    run.fleet.startFailed(id, WorkerFailure(message: error.message, permanent: error.code == .invalidConfiguration), now: now)
                }
            }
        }
        try await send(drains, connection)
        return actions
    }

    // MARK: - Status

    func updateBoard(_ run: ControllerRun, samplesDone samples: Int, now: Int64, tickTime: Duration = .zero) {
        let ledger = run.ledger
        let measured = run.rate.rate
        let counts = ledger.phaseCounts
        let fleet = run.fleet
        board.update { status in
            status.shards = Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
            status.totalShards = counts.values.reduce(0, +)
            status.samplesDone = samples
            status.totalSamples = ledger.expectedSamples
            status.workers = ledger.workerViews(now: now)
            status.reEnqueues = ledger.reEnqueues
            status.duplicates = ledger.duplicates
            status.workerRestarts = fleet.restarts
            status.desiredWorkers = fleet.desired
            status.autoscaling = fleet.autoscaling
            status.open = ledger.isOpen
            status.jobs = [JobListing(run.manifest)] + run.otherJobs.values.sorted { $0.updatedAt > $1.updatedAt }.prefix(49)
            status.scaleDecisions = fleet.autoscaler.decisions
            status.updatedAt = now
            status.heartbeatLagMs = run.heartbeatLagMs
            status.tickMs = Double(tickTime.milliseconds)
            status.lastWorkerError = fleet.lastError.map { "\($0.worker): \($0.message)" }
            status.lastWorkerErrorAgoMs = fleet.lastError.map { max(0, now - $0.time) }
            status.heldAcks = run.heldAcks
            // The done count over the last seconds; the workers' own (bursty) figures until it spans
            // one, or while nothing committed in it (long shards still running).
            let workersRate = status.workers.filter { !$0.lost }.reduce(0) { $0 + $1.samplesPerSecond }
            let rate = measured.flatMap { $0 > 0 ? $0 : nil } ?? workersRate
            status.samplesPerSecond = rate
            status.deadLetterReasons = ledger.deadReasons
            status.failedSamples = ledger.failedSamplesDone
            let remaining = ledger.samplesRemaining  // walks every shard: once per snapshot
            status.backlogSamples = remaining
            if let remaining, rate > 0 {
                status.etaSeconds = Double(remaining) / rate
            } else {
                status.etaSeconds = ledger.isComplete ? 0 : nil
            }
        }
        metrics.update(from: board.status)
    }

    // MARK: - Records

    func message<T: FlotillaRecord>(_ record: T, topic: String, key: String, partition: Int? = nil, attempt: Int? = nil) -> OutgoingRecord {
        OutgoingRecord(record, topic: topic, key: key, partition: partition.map { Int32($0) }, attempt: attempt)
    }

    /// The express lane: tells the live owner of each re-enqueued record's partition (else the
    /// least busy running worker) to fetch it now, so recovered work does not wait behind that
    /// partition's backlog. Best effort: the record is in the shards topic either way.
    func sendTakes(for reports: [(ShardRecord, Delivery)], _ connection: Connection, _ run: ControllerRun, now: Int64) async {
        guard !reports.isEmpty else { return }
        let owners = run.ledger.workerViews(now: now).filter { !$0.lost }
        // No owner of the partition (a fleet still joining the group, or an orphaned partition):
        // the least busy running worker, so recovered work never waits for a rebalance.
        let running = owners.filter { $0.state == WorkerState.running.rawValue }
        var extra: [String: Int] = [:]
        var takes: [OutgoingRecord] = []
        for (record, report) in reports {
            let fallback = running.min { ($0.inFlight.count + $0.queued + extra[$0.id, default: 0], $0.id)
                < ($1.inFlight.count + $1.queued + extra[$1.id, default: 0], $1.id) }
            guard let owner = owners.first(where: { $0.partitions.contains(Int(report.partition)) }) ?? fallback else { continue }
            extra[owner.id, default: 0] += 1
            let take = ControlRecord(job: options.job, target: owner.id, command: .take, shard: record.shard, attempt: record.attempt,
                                     partition: Int(report.partition), offset: report.offset, reason: record.reason.rawValue, time: now)
            takes.append(self.message(take, topic: connection.topics.control, key: owner.id))
        }
        await sendTakes(takes, connection)
    }

    /// Publishes take commands. They only speed work up (each shard is in the shards topic for its
    /// partition's owner either way), so one try, and a failure is only logged.
    func sendTakes(_ takes: [OutgoingRecord], _ connection: Connection) async {
        guard !takes.isEmpty else { return }
        do {
            try await connection.publisher.send(takes)
        } catch {
            logger.warning("cannot publish take commands; the partitions' owners will run those shards",
                           metadata: ["flotilla.count": "\(takes.count)", "flotilla.error": "\(error)"])
        }
    }

    /// Publishes `records` in order, riding out a broker outage (`OutageRetry`) instead of ending
    /// a job whose workers are fine. A record delivered twice is harmless (a shard record twice is
    /// a copy the reader rule discards).
    @discardableResult
    func send(_ records: [OutgoingRecord], _ connection: Connection) async throws -> [Delivery] {
        guard let topic = records.first?.topic else { return [] }
        return try await connection.publisher.sendRidingOutages(records, retrying: { error, attempt in
            logger.warning("cannot publish; retrying", metadata: [
                "flotilla.topic": "\(topic)", "flotilla.count": "\(records.count)",
                "flotilla.attempt": "\(attempt)", "flotilla.error": "\(error)"])
        }, giveUp: { error, _ in
            FlotillaError(.kafka, "cannot publish \(records.count) record(s) to \(topic)", underlying: error)
        })
    }
}
