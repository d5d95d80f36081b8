import FlotillaCore

/// The result of sharding one file or URL input: its ranges plus the counts a job summary or
/// progress bar needs.
public struct ShardPlan: Sendable, Hashable {
    /// The shards' ranges, in input order.
    public var ranges: [LineSource]
    /// Samples in each range, same order as `ranges` (blank lines and the CSV header not counted).
    public var sampleCounts: [Int]
    /// Bytes of input scanned.
    public var bytes: Int64

    /// All samples of the input.
    public var samples: Int { sampleCounts.reduce(0, +) }

    public init(ranges: [LineSource], sampleCounts: [Int], bytes: Int64) {
        self.ranges = ranges
        self.sampleCounts = sampleCounts
        self.bytes = bytes
    }
}

extension LineCutter {
    /// Ends the input (``finish()``) and returns its plan: every range at `location`.
    mutating func plan(at location: LineSource.Location) throws(FlotillaError) -> ShardPlan {
        let ranges = try finish().map { LineSource(location: location, range: $0) }
        return ShardPlan(ranges: ranges, sampleCounts: sampleCounts, bytes: consumed)
    }
}
