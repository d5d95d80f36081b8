import FlotillaCore
import Foundation
import Synchronization

/// What `/status` serves: a snapshot of the controller, refreshed every tick.
public struct ControllerStatus: Sendable, Hashable, Codable {
    public var job: String
    /// starting, replaying, running, done, cancelled, failed.
    public var state: String
    /// Shards by phase (pending, queued, in-flight, failed, done, dead) and their total.
    public var shards: [String: Int]
    public var totalShards: Int
    /// Samples in done shards.
    public var samplesDone: Int
    /// Samples the job has, when known at submission.
    public var totalSamples: Int?
    /// Samples finished per second now: the sum of the live workers' own measures.
    public var samplesPerSecond: Double
    /// Seconds left at that rate; nil while unknown.
    public var etaSeconds: Double?
    /// Workers with their last heartbeat.
    public var workers: [WorkerView]
    /// Re-enqueued attempts by reason.
    public var reEnqueues: [String: Int]
    /// Shards acked done more than once.
    public var duplicates: Int
    /// Workers replaced or restarted.
    public var workerRestarts: Int
    /// Workers the fleet wants.
    public var desiredWorkers: Int
    /// Whether the autoscaler chooses that number (else it is fixed by `--workers` or `flotilla scale`).
    public var autoscaling = false
    /// The autoscaler's latest decisions, newest last.
    public var scaleDecisions: [ScaleDecision] = []
    /// When this snapshot was taken (epoch ms).
    public var updatedAt: Int64
    /// The largest delay from a worker sending a heartbeat to this controller applying it, since
    /// the previous snapshot (ms): how far the controller's view lags the fleet.
    public var heartbeatLagMs: Int64 = 0
    /// How long the last tick took, in whole ms: the ledger's rules, publishing their actions, fleet upkeep.
    public var tickMs: Double = 0
    /// The latest error a worker reported (or its unexpected exit), "w1: message", and how long ago.
    public var lastWorkerError: String?
    public var lastWorkerErrorAgoMs: Int64?

    public init(job: String, state: String = "starting") {
        self.job = job
        self.state = state
        shards = Dictionary(uniqueKeysWithValues: ShardPhase.allCases.map { ($0.rawValue, 0) })
        totalShards = 0
        samplesDone = 0
        samplesPerSecond = 0
        workers = []
        reEnqueues = [:]
        duplicates = 0
        workerRestarts = 0
        desiredWorkers = 0
        updatedAt = Timestamp.now()
    }

    /// The snapshot as pretty JSON.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return ((try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }

    /// The snapshot in the Prometheus text exposition format.
    public var prometheus: String {
        var lines: [String] = []
        func family(_ name: String, _ type: String, _ help: String) {
            lines.append("# HELP \(name) \(help)")
            lines.append("# TYPE \(name) \(type)")
        }
        let job = Self.escape(self.job)
        family("flotilla_controller_shards", "gauge", "Shards of the job by state.")
        for phase in ShardPhase.allCases {
            lines.append("flotilla_controller_shards{job=\"\(job)\",state=\"\(phase.rawValue)\"} \(shards[phase.rawValue] ?? 0)")
        }
        family("flotilla_controller_samples_total", "counter", "Samples in done shards.")
        lines.append("flotilla_controller_samples_total{job=\"\(job)\"} \(samplesDone)")
        family("flotilla_controller_reenqueues_total", "counter", "Shard attempts published after the first, by reason.")
        for reason in Self.reasons.union(reEnqueues.keys).sorted() {
            lines.append("flotilla_controller_reenqueues_total{job=\"\(job)\",reason=\"\(Self.escape(reason))\"} \(reEnqueues[reason] ?? 0)")
        }
        family("flotilla_controller_worker_restarts_total", "counter", "Workers replaced or restarted.")
        lines.append("flotilla_controller_worker_restarts_total{job=\"\(job)\"} \(workerRestarts)")
        family("flotilla_controller_duplicates_total", "counter", "Shards acked done more than once (ran twice).")
        lines.append("flotilla_controller_duplicates_total{job=\"\(job)\"} \(duplicates)")
        family("flotilla_controller_workers", "gauge", "Workers heard from within the worker timeout.")
        lines.append("flotilla_controller_workers{job=\"\(job)\"} \(workers.filter { !$0.lost }.count)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Reasons always exported (at 0) so that rates work from the first scrape.
    static let reasons: Set<String> = [
        ShardReason.workerLost, .leaseExpired, .retry, .stolen, .speculative, .reconcile, .released,
    ].reduce(into: []) { $0.insert($1.rawValue) }

    static func escape(_ value: String) -> String {
        value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}

/// The latest `ControllerStatus`, written by the controller's loop and read by the HTTP thread.
public final class StatusBoard: Sendable {
    private let current: Mutex<ControllerStatus>

    public init(job: String) {
        current = Mutex(ControllerStatus(job: job))
    }

    public var status: ControllerStatus { current.withLock { $0 } }

    public func update(_ body: (inout ControllerStatus) -> Void) {
        current.withLock { body(&$0) }
    }

    /// Serves `/status`, `/metrics` and `/healthz`.
    public func respond(to path: String) -> HTTPResponse {
        switch path {
        case "/status":
            return HTTPResponse(status: 200, contentType: "application/json", body: status.json)
        case "/metrics":
            return HTTPResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: status.prometheus)
        case "/healthz":
            let state = status.state
            return HTTPResponse(status: 200, body: "ok \(state)\n")
        default:
            return HTTPResponse(status: 404, body: "not found: try /status, /metrics or /healthz\n")
        }
    }
}
