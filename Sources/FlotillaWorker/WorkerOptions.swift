import FlotillaCore
import Foundation

/// How one worker runs. The job's settings come from its manifest; these are the worker's own.
public struct WorkerOptions: Sendable {
    public var job: String
    /// Stable per worker slot: it names the transactional id, so a replacement fences its predecessor.
    public var workerID: String
    public var brokers: String
    public var topicPrefix: String
    /// Shards processed at once (pipelining across shards); nil picks `stages + 1`, at least 2.
    public var slots: Int?
    /// Shards held unstarted in the local queue beyond the running ones; nil means `slots`.
    public var prefetch: Int?
    /// Extra librdkafka properties (security settings) on top of the job's passthrough map.
    public var kafkaProperties: [String: String] = [:]
    /// The accelerators this worker hands to predictor processes (`--devices`); nil: the ones in
    /// its own `CUDA_VISIBLE_DEVICES`, else none.
    public var devices: [String]?
    /// Predictor processes the stages may run together beyond their minimums (`--cores`); nil:
    /// the machine's active processors.
    public var cores: Int?

    public init(job: String, workerID: String, brokers: String, topicPrefix: String = KafkaConfig.defaultTopicPrefix) {
        self.job = job
        self.workerID = workerID
        self.brokers = brokers
        self.topicPrefix = topicPrefix
    }

    /// A worker id unique on this machine: host and pid.
    public static func defaultWorkerID() -> String {
        "\(ProcessInfo.processInfo.hostName.split(separator: ".").first ?? "host")-\(getpid())"
    }
}

/// How a worker ended.
public enum WorkerExit: Sendable, Equatable, CustomStringConvertible {
    /// Drained, stopped or the job finished: exit 0.
    case finished(String)
    /// The job was cancelled: exit 0.
    case cancelled

    /// "finished (drained)", "the job was cancelled".
    public var description: String {
        switch self {
        case .finished(let how): "finished (\(how))"
        case .cancelled: "the job was cancelled"
        }
    }
}
