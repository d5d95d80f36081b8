import FlotillaCore
import Foundation

extension ResultRecord {
    /// Where `results` hold one whose record alone would not fit in `maxMessageBytes` (usually
    /// nowhere). The results of one execution share their record's overhead (job, shard, attempt,
    /// run), so with `largestEntry` (their largest `entryJSONSize`, when the caller counted it) the
    /// usual answer needs no pass. The pass reads through a buffer pointer: a method call on each
    /// array element copied every result (a retain and release of each of its strings).
    static func oversizedIndices(_ results: [ResultRecord], largestEntry: Int? = nil, maxMessageBytes: Int) -> [Int] {
        if let largestEntry, let first = results.first,
           ResultBatch.overheadBytes(of: first) + largestEntry <= maxMessageBytes { return [] }
        return results.withUnsafeBufferPointer { buffer in
            buffer.indices.filter { ResultBatch.overheadBytes(of: buffer[$0]) + buffer[$0].entryJSONSize > maxMessageBytes }
        }
    }

    /// An error result in place of this one when a results record holding it alone would not fit
    /// in `maxMessageBytes` (the producer would reject it, and with it the whole transaction); nil
    /// when it fits.
    func oversized(maxMessageBytes: Int) -> ResultRecord? {
        let size = ResultBatch.overheadBytes(of: self) + entryJSONSize
        guard size > maxMessageBytes, case .output = outcome else { return nil }
        return ResultRecord(job: job, id: id, shard: shard, attempt: attempt, run: run, outcome: .error(
            "the result is about \(size) bytes, over the \(maxMessageBytes)-byte record limit (kafka.maxMessageBytes); make the output smaller or raise the limit"),
            stage: stage)
    }
}

/// Writes an execution's results as JSON lines under `outputs.directory` (see `OutputDirectory`:
/// the controller keeps the winner's file).
enum ShardFileWriter {
    static func write(_ results: [ResultRecord], shard: String, run: String, directory: String) throws(FlotillaError) {
        var data = Data()
        for result in results {
            data.append(contentsOf: RecordCodec.shared.encode(result))
            data.append(0x0A)
        }
        try OutputDirectory(directory).writePending(data, shard: shard, run: run)
    }
}
