import FlotillaCore
import Foundation
import FlotillaKafka
import Logging

/// The controller's own heartbeat: how fresh its view of the topics is (a broker outage must not
/// look like a dead fleet), and one controller per job.
extension ControllerService {
    /// Refuses to start when another controller of the job sent a heartbeat within the worker
    /// timeout, unless this one takes over (then it waits until the other has stopped its
    /// fleet). Runs before any worker starts: a second fleet with the same worker ids would
    /// fence the first one's transactions.
    func checkNoOtherController(_ connection: Connection, settings: LedgerSettings) async throws {
        let brokers = BrokerConnection(bootstrapServers: options.brokers, properties: options.kafkaProperties,
                                       clientID: "flotilla-controller-check")
        let reader: RecordReader
        do throws(FlotillaError) {
            reader = try RecordReader(connection: brokers, pace: .catchUp, isolation: .uncommitted, logger: logger)
            // The tail is enough: a live controller sends a heartbeat every interval.
            try await reader.readLast(2_000, of: [connection.topics.heartbeats])
        } catch {
            throw FlotillaError(.kafka, "cannot read \(connection.topics.heartbeats)", underlying: error)
        }
        defer { Task { await reader.close() } }
        let beats = { (records: [TopicRecord]) in
            records.filter { $0.key == ControllerHeartbeat.key }
                .compactMap { try? $0.decode(ControllerHeartbeat.self) }
                .filter { $0.job == self.options.job }
        }
        let now = Timestamp.now()
        let recent: [ControllerHeartbeat]
        do {
            recent = beats(try await reader.readToEnd())
        } catch {
            throw FlotillaError(.kafka, "cannot read \(connection.topics.heartbeats)", underlying: error)
        }
        guard let other = recent.max(by: { $0.time < $1.time }), now - other.time < settings.workerTimeoutMs,
              other.stopping != true else { return }
        if options.takeOver {
            return await waitForHandOver(from: other, reader: reader, beats: beats, connection, settings: settings)
        }
        // On this host the process table answers at once (and a reused pid is told apart by its
        // command line); heartbeats decide only for a controller elsewhere.
        if Self.isRunningHere(other) != nil {
            // A process just killed can take a moment to go (seen: over a second on a loaded machine).
            let deadline = ContinuousClock.now + .milliseconds(3 * settings.heartbeatMs + 1_000)
            while Self.isRunningHere(other) == true {
                guard ContinuousClock.now < deadline else { throw Self.alreadyRunning(other, job: options.job, now: Timestamp.now()) }
                try await Task.sleep(for: .milliseconds(100))
            }
            return
        }
        // Recent, but maybe dead (killed): alive only if it beats twice after this check began,
        // within three intervals. (Older beats may still arrive: the first read can end early,
        // and one beat may have been on its way when it died.)
        let deadline = ContinuousClock.now + .milliseconds(3 * settings.heartbeatMs + 500)
        var fresh: Set<Int64> = []
        while ContinuousClock.now < deadline {
            let events = (try? await reader.poll(timeout: .milliseconds(100))) ?? []
            for beat in beats(events.compactMap(\.record))
            where beat.controller == other.controller && beat.time >= now {
                if beat.stopping == true { return }
                fresh.insert(beat.time)
                if fresh.count >= 2 { throw Self.alreadyRunning(beat, job: options.job, now: Timestamp.now()) }
            }
        }
    }

    /// A take-over announces itself and waits until the other controller has stopped its fleet
    /// (its last heartbeat says so, or its process is gone), so that the new
    /// workers join a group the old ones have left. Joining while they left tripped Tansu: a
    /// member that left while it was elected leader stayed the group's leader for ~2 minutes,
    /// and no worker got partitions.
    private func waitForHandOver(from other: ControllerHeartbeat, reader: RecordReader,
                                 beats: ([TopicRecord]) -> [ControllerHeartbeat],
                                 _ connection: Connection, settings: LedgerSettings) async {
        logger.notice("taking over the job; waiting for the other controller to stop its workers", metadata: ["flotilla.other": "\(other.holder)"])
        // It sends no heartbeat while its workers drain (up to the stop grace): silence proves nothing.
        let deadline = ContinuousClock.now + options.stopGrace + .milliseconds(settings.workerTimeoutMs) + .seconds(5)
        var nextBeat = ContinuousClock.now
        while ContinuousClock.now < deadline {
            if ContinuousClock.now >= nextBeat {
                nextBeat = .now + .milliseconds(settings.heartbeatMs)
                publishHeartbeat(connection)
            }
            if Self.isRunningHere(other) == false { return }
            let events = (try? await reader.poll(timeout: .milliseconds(100))) ?? []
            if beats(events.compactMap(\.record)).contains(where: { $0.controller == other.controller && $0.stopping == true }) { return }
        }
        logger.warning("the other controller did not stop in time; starting the fleet anyway", metadata: ["flotilla.other": "\(other.holder)"])
    }

    /// For a controller of this host: whether its process still runs this job's controller
    /// (`/proc/PID/cmdline`); nil for a controller on another host.
    static func isRunningHere(_ other: ControllerHeartbeat) -> Bool? {
        guard other.host == ProcessInfo.processInfo.hostName else { return nil }
        guard let data = FileManager.default.contents(atPath: "/proc/\(other.pid)/cmdline") else { return false }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        // `flotilla controller JOB`, or `flotilla run SPEC` (whose command line names the spec).
        return arguments.first?.hasSuffix("flotilla") == true
            && (arguments.contains("controller") && arguments.contains(other.job) || arguments.dropFirst().first == "run")
    }

    static func alreadyRunning(_ other: ControllerHeartbeat, job: String, now: Int64) -> FlotillaError {
        FlotillaError(.invalidConfiguration, "job '\(job)' already has a controller (\(other.holder), last heartbeat \(max(0, now - other.time)) ms ago); stop it first, or pass --take-over to replace it")
    }

    /// Publishes this controller's heartbeat every `faults.heartbeat` (without waiting: during
    /// an outage it waits in the producer's queue).
    func sendHeartbeatIfDue(_ connection: Connection, _ run: inout ControllerRun, stopping: Bool = false) {
        let now = Timestamp.now()
        guard now >= run.nextBeat || stopping else { return }
        run.nextBeat = now + run.ledger.settings.heartbeatMs
        publishHeartbeat(connection, stopping: stopping)
    }

    /// Publishes this controller's heartbeat now, with its progress while the job runs.
    private func publishHeartbeat(_ connection: Connection, stopping: Bool = false) {
        var beat = identity
        beat.time = Timestamp.now()
        beat.stopping = stopping ? true : nil
        let status = board.status
        if status.state == "running" {
            beat.progress = ControllerProgress(samplesDone: status.samplesDone, samplesPerSecond: status.samplesPerSecond,
                                               etaSeconds: status.etaSeconds)
        }
        do {
            try connection.publisher.enqueue(message(beat, topic: connection.topics.heartbeats, key: ControllerHeartbeat.key))
        } catch {
            logger.warning("cannot send the controller's heartbeat", metadata: ["flotilla.error": "\(error)"])
        }
    }

    /// A controller heartbeat read from the topic: this one's own (the view is fresh up to it),
    /// or another controller's (one of the two must stop).
    func apply(_ beat: ControllerHeartbeat, to run: inout ControllerRun, replaying: Bool, now: Int64) {
        if beat.controller == identity.controller {
            run.ledger.viewComplete(upTo: beat.time, now: now)
            return
        }
        guard !replaying, beat.job == options.job, now - beat.time < run.ledger.settings.workerTimeoutMs else { return }
        if beat.takeOver == true, beat.startedAt >= identity.startedAt {
            run.otherController = (beat, true)
        } else if identity.takeOver != true, (beat.startedAt, beat.controller) < (identity.startedAt, identity.controller) {
            // Both started at once (neither saw the other yet): the younger one yields.
            run.otherController = (beat, false)
        }
    }

    /// Stops this controller's fleet and ends it, because another controller runs the job.
    func yield(to other: ControllerHeartbeat, tookOver: Bool, _ run: inout ControllerRun) async throws -> Never {
        logger.error("another controller runs the job; stopping", metadata: ["flotilla.other": "\(other.holder)"])
        await stopFleet(&run)
        board.update { $0.state = "stopped" }
        if tookOver {
            throw FlotillaError(.internal, "job '\(options.job)' was taken over by another controller (\(other.holder)); this one stopped its workers and exits")
        }
        throw Self.alreadyRunning(other, job: options.job, now: Timestamp.now())
    }
}
