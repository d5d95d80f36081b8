/// One execution request of a shard on `<p>.<job>.shards`, keyed by shard id. A shard is published
/// first as attempt 0; every re-enqueue publishes the same shard id with a higher attempt.
public struct ShardRecord: FlotillaRecord, Hashable {
    public static let recordType = "shard"
    public static let recordName = "shard record"

    public var job: String
    /// The shard id, "s" + 6 or more digits: "s000042" (see `shardID(index:)`).
    public var shard: String
    /// 0 for the first publication, then 1, 2, ... Workers skip a record whose attempt is lower
    /// than one they have seen for the shard (superseded) or whose shard is already acked.
    public var attempt: Int
    /// Where the shard's samples are.
    public var source: ShardSource
    /// Number of samples, when known (inline shards, counted file ranges).
    public var samples: Int?
    /// Why this attempt was published.
    public var reason: ShardReason
    /// When it was published (epoch ms).
    public var createdAt: Int64

    public init(
        job: String, shard: String, attempt: Int = 0, source: ShardSource, samples: Int? = nil,
        reason: ShardReason = .initial, createdAt: Int64 = Timestamp.now()
    ) {
        self.job = job
        self.shard = shard
        self.attempt = attempt
        self.source = source
        self.samples = samples
        self.reason = reason
        self.createdAt = createdAt
    }

    /// Whether `id` is a shard id: "s" and at least six ASCII digits. Ids reach file names
    /// (`outputs.directory`), so nothing else is accepted.
    public static func isValidShardID(_ id: String) -> Bool {
        let utf8 = id.utf8
        return utf8.count >= 7 && utf8.count <= 20 && utf8.first == UInt8(ascii: "s")
            && utf8.dropFirst().allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// The problem of a record naming shard `id`, nil when the id is valid.
    static func shardIDProblem(_ id: String) -> String? {
        isValidShardID(id) ? nil : "invalid shard id '\(id.prefix(80))': a shard id is 's' followed by 6 to 19 digits"
    }

    public var problem: String? { Self.shardIDProblem(shard) }

    /// The id of the shard at 0-based position `index` in the job: "s000000", "s000001", ...
    /// (at least six digits, so ids sort in order up to a million shards).
    public static func shardID(index: Int) -> String {
        let digits = String(index)
        return "s" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}

/// Why a shard attempt was published. Open set: unknown reasons decode as they are.
public struct ShardReason: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        rawValue = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The first publication, by `flotilla submit`.
    public static let initial = ShardReason("initial")
    /// Its worker stopped sending heartbeats for `faults.workerTimeout`.
    public static let workerLost = ShardReason("worker-lost")
    /// No progress for `faults.shardTimeout`.
    public static let leaseExpired = ShardReason("lease-expired")
    /// The previous attempt failed and attempts are left.
    public static let retry = ShardReason("retry")
    /// Moved from a worker's backlog to an idle worker's partition.
    public static let stolen = ShardReason("stolen")
    /// A speculative copy of a straggler at the tail; the first ack wins.
    public static let speculative = ShardReason("speculative")
    /// The final reconcile found it neither done nor in flight.
    public static let reconcile = ShardReason("reconcile")
    /// Its worker drained or was stopped before starting it.
    public static let released = ShardReason("released")
}
