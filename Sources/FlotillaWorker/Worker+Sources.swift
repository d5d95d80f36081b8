import FlotillaCore
import FlotillaKafka
import Foundation

/// The tasks that feed the event loop from Kafka and send the heartbeats. Each asks the loop
/// before it reads more, so none runs ahead of it, and each ends when the loop answers nil.
extension Worker {
    /// Reads the group's records (at most the room the loop grants) and rebalances.
    func intake(_ runtime: WorkerRuntime) async {
        defer { eventSink.yield(.sourceEnded) }
        var room = await ask { .roomWanted($0) }
        while let granted = room {
            let events: [ShardEvent]
            do {
                // Records and rebalances end the wait at once, a stop interrupts it: the timeout
                // only paces an idle worker's wake-ups (at 100 ms they were most of its idle CPU).
                // A full worker's poll serves rebalances without waiting for a record it has no room for.
                events = try await runtime.link.pollShards(maxEvents: max(1, granted), timeout: granted > 0 ? .seconds(1) : .zero)
            } catch {
                eventSink.yield(.failed(FlotillaError(.kafka, "fatal Kafka consumer error; exiting so a supervisor replaces this worker", underlying: error)))
                return
            }
            var items: [IntakeItem] = []
            items.reserveCapacity(events.count)
            for event in events {
                if let item = await decode(event, runtime) { items.append(item) }
            }
            room = await ask { .intake(items, $0) }
        }
    }

    /// A record as a queued shard, or dead-lettered (a record no worker can run: another job's,
    /// undecodable, or naming a source this job does not declare).
    private func decode(_ event: ShardEvent, _ runtime: WorkerRuntime) async -> IntakeItem? {
        switch event {
        case .record(let message):
            do {
                let record = try message.decode(ShardRecord.self)
                guard record.job == options.job else {
                    throw FlotillaError(.codec, "shard record of job '\(record.job)' in the topic of job '\(options.job)'")
                }
                if let problem = runtime.config.problem(with: record.source) { throw FlotillaError(.invalidInput, problem) }
                return .shard(QueuedShard(record: record, partition: message.topicPartition, offset: message.offset))
            } catch {
                await runtime.link.deadLetter(message, reason: "\(error)")
                return .rejected(message.topicPartition, offset: message.offset)
            }
        case .assigned(let partitions):
            return .assigned(partitions)
        case .revoked(let partitions, let lost):
            return .revoked(partitions, lost: lost)
        case .error(let error):
            logger.warning("Kafka consumer error", metadata: ["flotilla.error": "\(error)"])
            return nil
        }
    }

    /// Tails the acks and control topics into the loop, and fetches the shard records that
    /// `take` commands name: the express lane (recovered shards, put first and allowed one slot
    /// beyond the rest) and the warm start (ordinary work, queued last).
    func ledgerTail(_ runtime: WorkerRuntime) async {
        defer { eventSink.yield(.sourceEnded) }
        while true {
            let records: [TopicRecord]
            do {
                // A command ends the wait at once and a stop interrupts it; acks (hints) are read
                // after it, so at least once a second.
                records = try await runtime.link.pollLedger(timeout: .seconds(1))
            } catch {
                eventSink.yield(.failed(FlotillaError(.kafka, "cannot read the job's acks and control topics", underlying: error)))
                return
            }
            let decoded = records.compactMap { try? $0.jobRecord(in: runtime.topics) }
            guard let takes = await ask({ .ledger(decoded, $0) }) else { return }
            let warm = takes.filter { $0.reason == ControlRecord.warmStartReason }
            await fetch(takes.filter { $0.reason != ControlRecord.warmStartReason }, express: true, runtime)
            await fetch(warm, express: false, runtime)
        }
    }

    /// Reads the shard records `commands` name in one pass over the shards topic, in the order
    /// they were sent, and hands them to the loop.
    private func fetch(_ commands: [ControlRecord], express: Bool, _ runtime: WorkerRuntime) async {
        let positions = commands.compactMap { command in
            command.partition.flatMap { partition in command.offset.map { (partition: Int32(partition), offset: $0) } }
        }
        guard !positions.isEmpty else { return }
        var taken: [QueuedShard] = []
        for message in await runtime.link.fetchShardRecords(positions) {
            guard let record = try? message.decode(ShardRecord.self),
                  record.job == options.job, runtime.config.problem(with: record.source) == nil else { continue }
            taken.append(QueuedShard(record: record, partition: message.topicPartition, offset: message.offset, express: express))
        }
        eventSink.yield(.taken(taken, express: express, reason: commands.first?.reason ?? "-"))
    }

    /// Sends a heartbeat whenever the loop says one is due (every `faults.heartbeat`, and at once
    /// when the controller should know sooner), with the predictor pools' states; the last one
    /// as the worker stops.
    func heartbeats(_ runtime: WorkerRuntime) async {
        defer { eventSink.yield(.sourceEnded) }
        while let beat = await ask({ .beatWanted($0) }) {
            var record = beat.record
            for stage in runtime.processor.stages {
                let pool = await stage.pool.state()
                record.predictors.append(PredictorStatus(stage: pool.stage, processes: pool.processes, busy: pool.busy, restarts: pool.restarts,
                                                         devices: pool.devices.isEmpty ? nil : pool.devices))
            }
            do {
                try runtime.link.send(record)
            } catch {
                logger.warning("cannot send heartbeat", metadata: ["flotilla.error": "\(error)"])
            }
            if beat.final { return }
        }
    }
}
