import FlotillaCore
import FlotillaKafka
import Logging
import Synchronization

/// Follows the tail of a job's heartbeats topic for the controller's own heartbeat, whose
/// `progress` has the live rate and ETA of its `/status`: `flotilla status --watch` shows the
/// controller's figures instead of working out its own. Reads only new records after the first
/// call (about the last 200 before it), so each refresh costs what arrived since the previous one.
final class ControllerProgressReader: Sendable {
    private let reader: RecordReader
    private let job: String
    /// The newest heartbeat of this job's controller seen so far.
    private let latest = Mutex<ControllerHeartbeat?>(nil)

    /// nil when the topic cannot be read (no heartbeats yet, an old job): the watch goes on without.
    static func open(connection: BrokerConnection, topics: TopicNames, logger: Logger) async -> ControllerProgressReader? {
        guard let reader = try? RecordReader(connection: connection, pace: .catchUp, isolation: .uncommitted, logger: logger) else { return nil }
        guard (try? await reader.readLast(200, of: [topics.heartbeats])) != nil else {
            await reader.close()
            return nil
        }
        return ControllerProgressReader(reader: reader, job: topics.job)
    }

    private init(reader: RecordReader, job: String) {
        self.reader = reader
        self.job = job
    }

    /// The controller's figures if it sent a heartbeat within `freshMs`, else nil.
    func current(freshMs: Int64 = 10_000) async -> ControllerProgress? {
        // The first call reads the tail to its end; later ones what arrived since (a poll that
        // returns nothing ends them).
        if !reader.caughtUp {
            take((try? await reader.readToEnd()) ?? [])
        }
        for _ in 0..<1_000 {
            guard let events = try? await reader.poll(timeout: .milliseconds(20)), !events.isEmpty else { break }
            take(events.compactMap(\.record))
        }
        return latest.withLock { beat in
            guard let beat, beat.stopping != true, Timestamp.now() - beat.time < freshMs else { return nil }
            return beat.progress
        }
    }

    private func take(_ records: [TopicRecord]) {
        for record in records where record.key == ControllerHeartbeat.key {
            guard let beat = try? record.decode(ControllerHeartbeat.self), beat.job == job else { continue }
            latest.withLock { if ($0?.time ?? .min) <= beat.time { $0 = beat } }
        }
    }

    func close() async { await reader.close() }
}
