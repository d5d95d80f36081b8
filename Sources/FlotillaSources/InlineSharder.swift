import FlotillaCore
import Foundation

/// Cuts inline samples (records a pipeline publishes directly) into shards that fit one Kafka record.
///
/// A shard holds at most `samplesPerShard` samples and its samples, encoded as a JSON array, take
/// at most `maxRecordBytes` bytes. The budget is for the samples array alone: the caller keeps
/// headroom for the rest of the shard record (the default 900 KB leaves ~100 KB under
/// librdkafka's 1 MB `message.max.bytes`). Sizes are measured with `JSONEncoder`'s default output
/// (which escapes `/`, so they are an upper bound for encoders that do not).
public enum InlineSharder {
    /// The default samples budget of one shard record, in bytes.
    public static let defaultMaxRecordBytes = 900_000

    /// Splits `samples`, in order, into shards.
    /// - Throws: `.invalidConfiguration` for a non-positive limit; `.invalidInput` when there are no
    ///   samples, when two samples share an id, or when one sample alone is over `maxRecordBytes`
    ///   (naming its id and both sizes).
    public static func shard(
        samples: [InlineSample], samplesPerShard: Int, maxRecordBytes: Int = defaultMaxRecordBytes
    ) throws(FlotillaError) -> [[InlineSample]] {
        guard samplesPerShard > 0 else {
            throw FlotillaError(.invalidConfiguration, "samples per shard must be > 0, got \(samplesPerShard)")
        }
        guard maxRecordBytes > 2 else {
            throw FlotillaError(.invalidConfiguration, "max record bytes must be > 2, got \(maxRecordBytes)")
        }
        guard !samples.isEmpty else {
            throw FlotillaError(.invalidInput, "inline input has no samples")
        }
        let encoder = JSONEncoder()
        var firstPosition: [String: Int] = [:]
        var shards: [[InlineSample]] = []
        var current: [InlineSample] = []
        var currentBytes = 2  // "[" and "]"
        for (position, sample) in samples.enumerated() {
            if let first = firstPosition[sample.id] {
                throw FlotillaError(
                    .invalidInput,
                    "inline samples \(first + 1) and \(position + 1) share the id '\(sample.id)'; sample ids must be unique"
                )
            }
            firstPosition[sample.id] = position
            let size: Int
            do {
                size = try encoder.encode(sample).count
            } catch {
                throw FlotillaError(.invalidInput, "inline sample '\(sample.id)' cannot be encoded as JSON", underlying: error)
            }
            guard size + 2 <= maxRecordBytes else {
                throw FlotillaError(
                    .invalidInput,
                    "inline sample '\(sample.id)' encodes to \(size) bytes, over the \(maxRecordBytes)-byte shard record limit; send it as a file or URL input instead"
                )
            }
            let added = size + (current.isEmpty ? 0 : 1)  // a comma between samples
            if !current.isEmpty && (current.count == samplesPerShard || currentBytes + added > maxRecordBytes) {
                shards.append(current)
                current = []
                currentBytes = 2
            }
            currentBytes += size + (current.isEmpty ? 0 : 1)
            current.append(sample)
        }
        shards.append(current)
        return shards
    }
}
