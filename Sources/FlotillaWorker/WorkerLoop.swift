import FlotillaCore
import FlotillaKafka
import Foundation
import Logging
import Synchronization

/// The worker's one event loop. It alone owns the `WorkerMachine` and the `LedgerView`: every
/// fact reaches it as a `WorkerEvent` on one stream (but executions' progress, which it reads from
/// the `RunBoard` for each heartbeat), and after each it carries out the machine's
/// actions (start a shard, publish, settle, commit offsets) as tasks that report back by event.
/// Tasks that need an answer (the intake's room, a transaction's offsets, the next heartbeat)
/// ask with a `Reply`; the loop parks an answer until it is due.
struct WorkerLoop {
    let worker: Worker
    let runtime: WorkerRuntime
    var machine: WorkerMachine
    var ledger: LedgerView
    /// The intake waits for room; the heartbeat task for its next beat.
    private var parkedIntake: Reply<Int>?
    private var parkedBeat: Reply<Beat>?
    /// The intake, the ledger tail and the heartbeat task, until each ends.
    private var sources = 3
    private(set) var failure: FlotillaError?
    private var lastPoll = ContinuousClock.now
    /// When the last heartbeat was sent (none yet: long ago, so the first goes at once).
    private var lastBeat = ContinuousClock.now - .seconds(3_600)
    private var wasStopping = false
    private var tasksCancelled = false
    /// Which executions should stop, and how far each has come.
    let board = RunBoard()
    private let timer = DeadlineTimer()
    /// The deadline the timer was last armed for.
    private var armedFor: ContinuousClock.Instant?
    private let hostName = ProcessInfo.processInfo.hostName

    init(worker: Worker, runtime: WorkerRuntime) {
        self.worker = worker
        self.runtime = runtime
        machine = WorkerMachine(slots: runtime.slots, holdLimit: runtime.slots + (worker.options.prefetch ?? runtime.slots))
        ledger = LedgerView(workerID: worker.options.workerID)
        let sink = worker.eventSink
        timer.onFire { sink.yield(.tick) }
    }

    /// Runs until the worker has stopped and everything it started has ended.
    mutating func run() async {
        var events = worker.events.makeAsyncIterator()
        await withDiscardingTaskGroup { group in
            group.addTask { [worker, runtime] in await worker.intake(runtime) }
            group.addTask { [worker, runtime] in await worker.ledgerTail(runtime) }
            group.addTask { [worker, runtime] in await worker.heartbeats(runtime) }
            while let event = await events.next() {
                handle(event)
                if failure != nil && !tasksCancelled {
                    tasksCancelled = true
                    group.cancelAll()  // a commit riding out an outage ends now
                }
                advance(group: &group)
                if machine.isStopping && sources == 0 && (failure != nil ? machine.running.isEmpty : machine.isIdle) { break }
            }
            // Ended, or cancelled: whatever still runs stops, and every question still asked is answered.
            machine.stop(.finished("stopped"))
            board.abandon(Set(machine.running.keys))
            worker.eventSink.finish()
            timer.cancel()
            parkedIntake?.resume(returning: nil)
            parkedBeat?.resume(returning: nil)
            while let event = await events.next() { Self.refuse(event) }
        }
    }

    // MARK: events

    private mutating func handle(_ event: WorkerEvent) {
        switch event {
        case .intake(let items, let reply):
            lastPoll = .now
            for item in items { take(item) }
            parkedIntake = reply
        case .roomWanted(let reply):
            parkedIntake = reply
        case .ledger(let records, let reply):
            for record in records {
                switch record {
                case .ack(let ack): ledger.apply(ack: ack)
                case .control(let control): ledger.apply(control: control)
                default: break
                }
            }
            let commands = ledger.takeCommands()
            for command in commands where command.command != .take { carryOut(command) }
            _ = machine.dropStale(ledger.skipReason)  // queued attempts that became stale while waiting
            reply.resume(returning: machine.isStopping ? nil : commands.filter { $0.command == .take })
        case .taken(let shards, let express, let reason):
            let added = machine.take(shards.filter { ledger.skipReason($0.record) == nil }, express: express)
            if !added.isEmpty {
                worker.logger.info("took shards named by the controller", metadata: [
                    "flotilla.shards": "\(added.map(\.record.shard))", "flotilla.reason": "\(reason)",
                ])
            }
        case .finished(let run, let shard):
            machine.finish(run: run, shard)
        case .offsetsWanted(let batch, let reply):
            // Asked again on every try: a rebalance may have taken partitions away meanwhile.
            reply.resume(returning: failure == nil ? machine.offsetsToCommit(assumingPublished: batch) : nil)
        case .published(let shards):
            machine.published(shards)
            for shard in shards where shard.ack.status == .done { ledger.apply(ack: shard.ack) }
        case .settled:
            machine.settled()
        case .offsetsCommitted:
            machine.offsetsCommitted()
        case .commitFailed(let error):
            machine.commitFailed()
            fail(error)
        case .beatWanted(let reply):
            parkedBeat = reply
        case .tick:
            break
        case .drain:
            machine.drain()
            runtime.link.interruptPolls()
        case .stop(let exit):
            machine.stop(exit)
        case .failed(let error):
            fail(error)
        case .sourceEnded:
            sources -= 1
        }
    }

    private mutating func take(_ item: IntakeItem) {
        switch item {
        case .shard(let shard):
            machine.received(shard.partition, offset: shard.offset)
            machine.enqueue(shard)
        case .rejected(let partition, let offset):
            machine.received(partition, offset: offset)
            machine.release(partition, offset: offset)
        case .assigned(let partitions):
            worker.logger.info("partitions assigned", metadata: ["flotilla.partitions": "\(partitions.map(\.partition))"])
            machine.assign(partitions)
        case .revoked(let partitions, let lost):
            worker.logger.info("partitions revoked", metadata: ["flotilla.partitions": "\(partitions.map(\.partition))", "flotilla.lost": "\(lost)"])
            machine.revoke(partitions)
        }
    }

    private mutating func carryOut(_ command: ControlRecord) {
        worker.logger.info("control command", metadata: ["flotilla.command": "\(command.command.rawValue)", LoggingKeys.shard: "\(command.shard ?? "-")"])
        switch command.command {
        case .drain:
            machine.drain()
            runtime.link.interruptPolls()
        case .stop: machine.stop(.finished("stopped by the controller"))
        case .cancel: machine.stop(.cancelled)
        case .abandon:
            if let shard = command.shard { _ = machine.abandon(shard: shard, attempt: command.attempt) }
        case .settle: machine.askSettle()
        case .supersede, .scale, .take, .close: break
        }
    }

    private mutating func fail(_ error: FlotillaError) {
        if failure == nil { failure = error }
        machine.stop(.finished("failed"))
    }

    // MARK: actions

    /// Carries out what the machine decided, answers what is due, and sets the timer for the next
    /// deadline.
    private mutating func advance(group: inout DiscardingTaskGroup) {
        let now = ContinuousClock.now
        if failure == nil {
            let actions = machine.actions(at: now, stamp: Timestamp.now(), skipReason: ledger.skipReason) { UUID().uuidString.lowercased() }
            for action in actions { perform(action, group: &group) }
        }
        board.abandon(machine.abandonedRuns)
        if machine.isStopping && !wasStopping {
            wasStopping = true
            runtime.link.interruptPolls()  // the intake's and the ledger tail's one-second waits
        }
        answerIntake(now: now)
        answerBeat(now: now)
        let deadlines = [failure == nil ? machine.nextDeadline() : nil, parkedIntake.map { _ in lastPoll + fullPoll },
                         parkedBeat.map { _ in nextBeat }]
        // Re-armed only for an earlier deadline: rescheduling a dispatch timer after every event
        // costs more than the event.
        if let next = deadlines.compactMap({ $0 }).min(), armedFor.map({ next < $0 || $0 <= now }) ?? true {
            armedFor = next
            timer.arm(at: .now() + max(0, (next - now).seconds))
        }
    }

    private func perform(_ action: WorkerAction, group: inout DiscardingTaskGroup) {
        switch action {
        case .start(let shard, let run):
            group.addTask { [worker, runtime, board] in await worker.execute(shard, run: run, runtime, board: board) }
        case .skip(let shard, let reason):
            worker.logger.debug("shard skipped", metadata: [LoggingKeys.shard: "\(shard.record.shard)", "flotilla.reason": "\(reason)"])
        case .publish(let batch):
            group.addTask { [worker, runtime] in await worker.publish(batch, runtime) }
        case .settle(let asked):
            group.addTask { [worker, runtime] in await worker.settle(asked: asked, runtime) }
        case .commitOffsets(let offsets):
            group.addTask { [worker, runtime] in await worker.commitOffsets(offsets, runtime) }
        }
    }

    /// A full worker still polls once a minute, to serve rebalances and stay within
    /// max.poll.interval.
    static let idlePoll: Duration = .seconds(60)

    /// How often a full worker polls: once a minute; once a second while it has no partitions,
    /// to take its assignment (a member that has not holds up the group's next rebalance). A
    /// poll with no room does not wait, so no record comes with the assignment.
    private var fullPoll: Duration { machine.assigned.isEmpty ? .seconds(1) : Self.idlePoll }

    /// Hold only the shards this worker can start soon: that is what lets faster workers take
    /// more. A full worker does not poll, so records stay in Kafka (pausing partitions instead
    /// makes the next fetch after resume wait most of a second), except every `fullPoll`.
    private mutating func answerIntake(now: ContinuousClock.Instant) {
        guard let reply = parkedIntake else { return }
        if machine.isStopping {
            reply.resume(returning: nil)
        } else if machine.room > 0 || now - lastPoll >= fullPoll {
            reply.resume(returning: machine.room)
        } else {
            return
        }
        parkedIntake = nil
    }

    /// When the next heartbeat is due: an interval after the last; at once when the controller
    /// must hear (`heartbeatWanted`, stopping); a quarter interval after the last when the worker
    /// went idle, so that one going idle after every tiny shard does not beat at the broker many
    /// times an interval.
    private var nextBeat: ContinuousClock.Instant {
        if machine.isStopping || machine.heartbeatWanted { return lastBeat }
        let interval = runtime.config.faults.heartbeat
        return lastBeat + (machine.idleBeatWanted ? interval / 4 : interval)
    }

    private mutating func answerBeat(now: ContinuousClock.Instant) {
        guard let reply = parkedBeat, now >= nextBeat else { return }
        parkedBeat = nil
        machine.heartbeatWanted = false
        machine.idleBeatWanted = false
        let seconds = max(0.001, (now - lastBeat).seconds)
        lastBeat = now
        for (run, done) in board.takeProgress() { machine.progress(run: run, done: done) }
        let report = machine.heartbeatReport()
        let options = worker.options
        let record = HeartbeatRecord(
            job: options.job, worker: options.workerID, host: hostName, pid: Int(getpid()),
            state: machine.isStopping ? .stopping : (machine.phase == .draining ? .draining : .running),
            inFlight: report.inFlight, queued: report.queued, samplesPerSecond: Double(report.samples) / seconds,
            predictors: [], partitions: machine.assigned.map { Int($0.partition) }.sorted(), committed: report.committed,
            positions: machine.partitionPositions,
            usage: WorkerUsage(cpuSeconds: ProcessUsage.cpuSeconds(), samples: machine.samplesDone, shards: machine.shardsDone))
        reply.resume(returning: Beat(record: record, final: machine.isStopping))
    }

    /// An event that came after the loop ended: its question is answered with nil.
    private static func refuse(_ event: WorkerEvent) {
        switch event {
        case .intake(_, let reply), .roomWanted(let reply): reply.resume(returning: nil)
        case .ledger(_, let reply): reply.resume(returning: nil)
        case .offsetsWanted(_, let reply): reply.resume(returning: nil)
        case .beatWanted(let reply): reply.resume(returning: nil)
        default: break
        }
    }
}

/// What executions and the loop share without an event each time: which executions should stop
/// (written by the loop, read by executions between batches) and how many samples each has
/// finished (written by executions, read by the loop for heartbeats, which alone report it: an
/// event per batch was a thread hop per batch).
final class RunBoard: Sendable {
    private struct State {
        var abandoned: Set<String> = []
        var progress: [String: Int] = [:]
    }

    private let state = Mutex(State())

    func abandon(_ runs: Set<String>) {
        state.withLock { if $0.abandoned != runs { $0.abandoned = runs } }
    }

    func isAbandoned(_ run: String) -> Bool { state.withLock { $0.abandoned.contains(run) } }

    func report(run: String, done: Int) {
        state.withLock { $0.progress[run] = done }
    }

    /// Progress reported since the last call.
    func takeProgress() -> [String: Int] {
        state.withLock { state in
            defer { state.progress.removeAll(keepingCapacity: true) }
            return state.progress
        }
    }
}
