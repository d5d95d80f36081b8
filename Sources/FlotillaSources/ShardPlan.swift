/// The result of sharding one input: its ranges plus the counts a job summary or progress bar needs.
public struct ShardPlan<Range: Sendable & Hashable>: Sendable, Hashable {
    /// The shards' ranges, in input order.
    public var ranges: [Range]
    /// Samples in each range, same order as `ranges` (blank lines and the CSV header not counted).
    public var sampleCounts: [Int]
    /// Bytes of input scanned.
    public var bytes: Int64

    /// All samples of the input.
    public var samples: Int { sampleCounts.reduce(0, +) }

    public init(ranges: [Range], sampleCounts: [Int], bytes: Int64) {
        self.ranges = ranges
        self.sampleCounts = sampleCounts
        self.bytes = bytes
    }
}
