import FlotillaCore

/// What `flotilla submit` will publish: every shard of every input, in order, and the counts.
public struct SubmitPlan: Sendable, Hashable {
    /// The validated job spec.
    public var config: JobConfig
    /// One shard record per shard (attempt 0, reason `initial`), ids "s000000", "s000001", ...
    /// in input order, then byte or sample order within an input.
    public var shards: [ShardRecord]
    /// Per input, in spec order.
    public var inputs: [PlannedInput]

    public init(config: JobConfig, shards: [ShardRecord], inputs: [PlannedInput]) {
        self.config = config
        self.shards = shards
        self.inputs = inputs
    }

    public var job: String { config.job }
    public var topics: TopicNames { config.topics }
    /// All input samples.
    public var samples: Int { inputs.reduce(0) { $0 + $1.samples } }

    /// The manifest published last (status submitted), `createdAt` now.
    public func manifest(createdAt: Int64 = Timestamp.now()) -> JobManifest {
        JobManifest(config: config, shards: shards.count, samples: samples, createdAt: createdAt, status: .submitted)
    }

    /// The shards-topic partition of the shard at `index` when the topic has `partitions`:
    /// round-robin by shard index, so shards spread evenly and a re-publication of the same
    /// plan lands every shard in the same partition as before.
    public static func partition(ofShardAt index: Int, partitions: Int) -> Int32 {
        Int32(index % max(1, partitions))
    }
}

/// One input of a plan.
public struct PlannedInput: Sendable, Hashable {
    /// 1-based position in the spec's `inputs`.
    public var position: Int
    /// "file", "url" or "inline".
    public var kind: String
    /// The path, URL, or "N inline samples".
    public var location: String
    public var samples: Int
    public var shards: Int
    /// Bytes scanned (files and URLs); nil for inline inputs.
    public var bytes: Int64?
    /// The index in `SubmitPlan.shards` of this input's first shard.
    public var firstShard: Int

    public init(position: Int, kind: String, location: String, samples: Int, shards: Int, bytes: Int64?, firstShard: Int) {
        self.position = position
        self.kind = kind
        self.location = location
        self.samples = samples
        self.shards = shards
        self.bytes = bytes
        self.firstShard = firstShard
    }
}

extension ShardSource {
    /// One line for a shard plan: "file /data/x.jsonl bytes 0-4095 (lines from 1)".
    public var planDescription: String {
        switch self {
        case .lines(let lines):
            return "\(lines.location) \(Self.describe(lines.range))"
        case .inline(let samples):
            let first = samples.first?.id ?? ""
            let last = samples.last?.id ?? ""
            return "inline ids \(first)..\(last)"
        }
    }

    private static func describe(_ range: ByteRange) -> String {
        let end = range.offset + range.length - 1
        return "bytes \(range.offset)-\(max(range.offset, end)) (from line \(range.firstLine))"
    }
}
