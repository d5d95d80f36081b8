import Foundation

/// `outputs.directory`, exactly once: each execution writes its shard's lines under `.pending/`
/// with its run id in the name (before its ack is published), and the controller, which knows
/// the winning ack, moves the winner's file to `<shard>.jsonl` and deletes the others. A reader of
/// the folder sees only complete files of winning executions.
public struct OutputDirectory: Sendable {
    public let path: String

    public init(_ path: String) { self.path = path }

    var pendingFolder: String { "\(path)/.pending" }

    /// The file of a done shard.
    public func finalPath(shard: String) throws(FlotillaError) -> String {
        try Self.check(shard)
        return "\(path)/\(shard).jsonl"
    }

    /// Whether the done shard's file is in place.
    public func hasFile(shard: String) -> Bool {
        (try? finalPath(shard: shard)).map { FileManager.default.fileExists(atPath: $0) } ?? false
    }

    /// Where execution `run` of `shard` writes its lines.
    public func pendingPath(shard: String, run: String) throws(FlotillaError) -> String {
        try Self.check(shard)
        guard !run.isEmpty, run.utf8.allSatisfy({ $0 == UInt8(ascii: "-") || ($0 < 0x80 && Character(Unicode.Scalar($0)).isHexDigit) }) else {
            throw FlotillaError(.invalidInput, "invalid run id '\(run.prefix(80))'")
        }
        return "\(pendingFolder)/\(shard).\(run).jsonl"
    }

    /// Writes execution `run`'s lines of `shard` (a temporary name renamed into place).
    public func writePending(_ data: Data, shard: String, run: String) throws(FlotillaError) {
        let final = try pendingPath(shard: shard, run: run)
        let temporary = "\(final).\(getpid()).tmp"
        do {
            try FileManager.default.createDirectory(atPath: pendingFolder, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: temporary))
        } catch {
            throw FlotillaError(.internal, "cannot write results of \(shard) under \(pendingFolder)", underlying: error)
        }
        try Self.rename(temporary, final)
    }

    /// The winning execution of `shard` is `run`: its file becomes `<shard>.jsonl`.
    public func promote(shard: String, run: String) throws(FlotillaError) {
        try Self.rename(try pendingPath(shard: shard, run: run), try finalPath(shard: shard))
    }

    /// A done ack of `run` was read and the shard's winning run is `winner`: the winner's file is
    /// moved into place, a loser's deleted. A winner's file already in place (a controller
    /// replaying the same ack) is fine; a missing one throws.
    public func settle(shard: String, run: String, winner: String?) throws(FlotillaError) {
        guard winner == run else { return discard(shard: shard, run: run) }
        do {
            try promote(shard: shard, run: run)
        } catch {
            if !hasFile(shard: shard) { throw error }
        }
    }

    /// Deletes a losing execution's file (absent is fine).
    public func discard(shard: String, run: String) {
        guard let pending = try? pendingPath(shard: shard, run: run) else { return }
        unlink(pending)
    }

    /// Deletes what executions left that never won (abandoned, superseded): once the job is done.
    public func removePending() {
        try? FileManager.default.removeItem(atPath: pendingFolder)
    }

    private static func check(_ shard: String) throws(FlotillaError) {
        guard ShardRecord.isValidShardID(shard) else {
            throw FlotillaError(.invalidInput, "invalid shard id '\(shard.prefix(80))': not used as a file name")
        }
    }

    private static func rename(_ from: String, _ to: String) throws(FlotillaError) {
        if Foundation.rename(from, to) != 0 {
            throw FlotillaError(.internal, "rename \(from) → \(to): \(String(cString: strerror(errno)))")
        }
    }
}
