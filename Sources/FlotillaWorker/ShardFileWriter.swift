import FlotillaCore
import Foundation

/// Writes an execution's results as JSON lines under `outputs.directory` (see `OutputDirectory`:
/// the controller keeps the winner's file).
enum ShardFileWriter {
    static func write(_ results: ResultEntries, directory: String) throws(FlotillaError) {
        var data = Data()
        for result in results.records {
            data.append(contentsOf: RecordCodec.shared.encode(result))
            data.append(0x0A)
        }
        try OutputDirectory(directory).writePending(data, shard: results.shard, run: results.run)
    }
}
