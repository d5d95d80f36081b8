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
    /// `mode: open`: the job ends on `flotilla close` (or `POST /actions/close`).
    public var open = false
    /// The jobs on `<p>.jobs` as their latest manifests say (this one first, then the most
    /// recently updated; 50 at most): the dashboard's job picker.
    public var jobs: [JobListing] = []
    /// The autoscaler's latest decisions, newest last.
    public var scaleDecisions: [ScaleDecision] = []
    /// Of the samples done, those that ended as error results.
    public var failedSamples = 0
    /// Samples of shards not done yet, where their records say (nil when unknown).
    public var backlogSamples: Int?
    /// Dead-lettered shards by their reason (the most common 5).
    public var deadLetterReasons: [ErrorCount] = []
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
    /// Set while an open transaction holds the acks topic (committed reads stop at it): whose, and
    /// what the controller does about it.
    public var heldAcks: String?

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

    /// The snapshot as pretty JSON (`/status`).
    public var json: String { encoded(pretty: true) + "\n" }

    /// The snapshot as JSON on one line (`/events`).
    public var compactJSON: String { encoded(pretty: false) }

    private func encoded(pretty: Bool) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// One job of `<p>.jobs`, from its latest manifest.
public struct JobListing: Sendable, Hashable, Codable {
    public var job: String
    public var status: String
    public var shards: Int
    public var samples: Int?
    /// Shards done, once a summary was written (at the end, or by `cancel`).
    public var done: Int?
    public var updatedAt: Int64

    init(_ manifest: JobManifest) {
        job = manifest.config.job
        status = manifest.status.rawValue
        shards = manifest.shards
        samples = manifest.samples
        done = manifest.summary?.done
        updatedAt = manifest.updatedAt
    }
}

/// The latest `ControllerStatus`, written by the controller's loop and read by the HTTP server.
public final class StatusBoard: Sendable {
    private let current: Mutex<ControllerStatus>

    public init(job: String) {
        current = Mutex(ControllerStatus(job: job))
    }

    public var status: ControllerStatus { current.withLock { $0 } }

    public func update(_ body: (inout ControllerStatus) -> Void) {
        current.withLock { body(&$0) }
    }
}
