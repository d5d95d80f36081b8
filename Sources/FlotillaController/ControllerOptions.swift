import FlotillaCore
import FlotillaHTTP

/// How `ControllerService` runs a job.
public struct ControllerOptions: Sendable {
    /// The job id.
    public var job: String
    /// Bootstrap servers, "host:port[,...]".
    public var brokers: String
    /// The topic prefix the job was submitted with (default "flotilla").
    public var topicPrefix: String
    /// Workers to run; nil means the last `scale` command, else `workers.min` (at least 1).
    public var workers: Int?
    /// How often the ledger's rules run.
    public var tickInterval: Duration
    /// How long to wait for the job's manifest to appear on `<p>.jobs`.
    public var manifestTimeout: Duration
    /// How long a stopping worker gets between SIGTERM and SIGKILL.
    public var stopGrace: Duration
    /// The HTTP server (`/status`, `/metrics`, `/healthz`, actions with the token); nil: none.
    public var http: OperatorSettings?
    /// librdkafka properties passed through (security, SASL, TLS).
    public var kafkaProperties: [String: String]
    /// Replace a controller that already runs the job (it stops when it reads this one's
    /// heartbeat) instead of refusing to start.
    public var takeOver = false
    /// Refuse manifests not signed with this key (`ManifestSignature`).
    public var signer: ManifestSignature?

    public init(
        job: String, brokers: String, topicPrefix: String = KafkaConfig.defaultTopicPrefix, workers: Int? = nil,
        tickInterval: Duration = .milliseconds(250),
        manifestTimeout: Duration = .seconds(30), stopGrace: Duration = .seconds(10), httpPort: Int? = nil,
        kafkaProperties: [String: String] = [:]
    ) {
        self.job = job
        self.brokers = brokers
        self.topicPrefix = topicPrefix
        self.workers = workers
        self.tickInterval = tickInterval
        self.manifestTimeout = manifestTimeout
        self.stopGrace = stopGrace
        // `httpPort`: loopback at that port (0: any free port), no token (actions refused).
        self.http = httpPort.map { OperatorSettings(address: HTTPListenAddress(port: $0)) }
        self.kafkaProperties = kafkaProperties
    }
}

/// How a controller run ended.
public enum ControllerOutcome: Sendable, Hashable {
    /// Every shard is done or dead-lettered.
    case completed(JobStatusSummary)
    /// The job was cancelled (`flotilla cancel`).
    case cancelled(JobStatusSummary)
    /// The controller stopped the job: `summary.failure` says why.
    case failed(JobStatusSummary)

    public var summary: JobStatusSummary {
        switch self {
        case .completed(let summary), .cancelled(let summary), .failed(let summary): summary
        }
    }

    /// The documented exit status: 0 every shard done, 3 some dead-lettered, 1 cancelled,
    /// 2 a predictor that cannot start, 4 more failed samples than `faults.maxErrorRate` allows.
    public var exitCode: Int32 {
        switch self {
        case .completed(let summary): summary.failure?.exitCode ?? (summary.dead > 0 ? 3 : 0)
        case .cancelled: 1
        case .failed(let summary): summary.failure?.exitCode ?? 1
        }
    }
}
