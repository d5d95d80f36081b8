/// A job's entry in the compacted `<p>.jobs` topic, keyed by job id: its validated config and
/// its current status. `flotilla submit` writes it as submitted; the controller rewrites it as
/// running, then done (with the summary) or cancelled.
public struct JobManifest: FlotillaRecord, Hashable {
    public static let recordType = "job"
    public static let recordName = "job manifest"

    public var job: String
    /// The validated job spec, defaults filled in and paths absolute.
    public var config: JobConfig
    /// Number of shards published (initial attempts).
    public var shards: Int
    /// Number of input samples, when known at submission (inline inputs, counted files).
    public var samples: Int?
    /// When the job was submitted (epoch ms).
    public var createdAt: Int64
    /// When this manifest was written (epoch ms).
    public var updatedAt: Int64
    public var status: JobStatus
    /// The final counts, once the job is done or cancelled.
    public var summary: JobStatusSummary?
    /// `hmac-sha256:<hex>` over the job id and config, when the job was submitted with a
    /// manifest key (`ManifestSignature`); workers and controllers that hold the key refuse a
    /// manifest without a valid one.
    public var signature: String?

    public init(
        config: JobConfig, shards: Int, samples: Int? = nil, createdAt: Int64 = Timestamp.now(),
        updatedAt: Int64? = nil, status: JobStatus = .submitted, summary: JobStatusSummary? = nil
    ) {
        self.job = config.job
        self.config = config
        self.shards = shards
        self.samples = samples
        self.createdAt = createdAt
        self.updatedAt = updatedAt ?? createdAt
        self.status = status
        self.summary = summary
    }
}

/// A job's lifecycle state.
public enum JobStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Shards published, no controller has taken it yet.
    case submitted
    /// A controller runs it.
    case running
    /// Every shard is done or dead-lettered; `summary` says which.
    case done
    /// Cancelled by `flotilla cancel`; workers stop and the remaining shards are not run.
    case cancelled
    /// Stopped by its controller: a predictor that cannot start, or the error budget spent;
    /// `summary.failure` says why. A new controller for the job tries it again.
    case failed
}
