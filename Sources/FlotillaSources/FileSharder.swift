import FlotillaCore

/// Cuts a local JSON-lines or CSV file into byte-range shards on row boundaries.
///
/// The file is read once, sequentially, in large `read(2)` chunks and scanned with `memchr`; rows
/// are never parsed, so a bad row is found later by the reader and becomes an error sample.
/// What counts (see ``LineCutter``):
/// - blank lines (only spaces, tabs, carriage returns) are not samples;
/// - a leading UTF-8 byte order mark is skipped;
/// - for CSV the first non-blank row is the header: not a sample, carried in every shard's
///   `header`; a quoted field may span lines (RFC 4180) and shards never cut inside it;
/// - `\n` and `\r\n` endings both work, and the last line needs no trailing newline.
/// Every range carries the checksum of its bytes, checked by ``ShardReader``.
///
/// Ids: `idField` nil gives `<path>:<line>` ids; `.standard` reads the `id` field or column when
/// there is one; `.named` requires the column in a CSV header.
///
/// Errors (all `FlotillaError`, naming the path): missing or unreadable file (with the OS reason),
/// a directory, an empty file, a file with no samples, a row longer than `maxSampleBytes`
/// (with its line number), a CSV header with a duplicate column or without a `.named` id column.
///
/// This call blocks on file I/O; from async code use ``planInBackground(path:format:idField:samplesPerShard:maxSampleBytes:)``.
public enum FileSharder {
    /// The read size: large enough that syscalls cost nothing next to the scan, small enough that
    /// the chunk is still in cache when it is checksummed after the newline scan (8 MiB was ~10 % slower).
    public static let chunkBytes = 1 << 20

    /// Shards the file at `path` (kept as given in the ranges and in `<path>:<line>` sample ids).
    /// - Parameters:
    ///   - samplesPerShard: samples per shard; the last shard may hold fewer. Must be > 0.
    ///   - maxSampleBytes: the longest line allowed, in bytes, without its line ending.
    public static func shard(
        path: String, format: LineFormat, idField: IDField? = nil, samplesPerShard: Int, maxSampleBytes: Int
    ) throws(FlotillaError) -> [LineSource] {
        try plan(path: path, format: format, idField: idField, samplesPerShard: samplesPerShard, maxSampleBytes: maxSampleBytes).ranges
    }

    /// Like ``shard(path:format:idField:samplesPerShard:maxSampleBytes:)``, with sample counts.
    public static func plan(
        path: String, format: LineFormat, idField: IDField? = nil, samplesPerShard: Int, maxSampleBytes: Int
    ) throws(FlotillaError) -> ShardPlan {
        var cutter = try LineCutter(
            source: path, format: format, idField: idField,
            samplesPerShard: samplesPerShard, maxSampleBytes: maxSampleBytes
        )
        let file = try InputFile(path: path)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            let count = try file.readChunk(into: buffer)
            if count == 0 { break }
            try cutter.consume(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
        return try cutter.plan(at: .file(path: path))
    }

    /// ``plan(path:format:idField:samplesPerShard:maxSampleBytes:)`` on a Dispatch thread, off the cooperative pool.
    public static func planInBackground(
        path: String, format: LineFormat, idField: IDField? = nil, samplesPerShard: Int, maxSampleBytes: Int
    ) async throws(FlotillaError) -> ShardPlan {
        try await Blocking.run { () throws(FlotillaError) in
            try plan(path: path, format: format, idField: idField, samplesPerShard: samplesPerShard, maxSampleBytes: maxSampleBytes)
        }
    }
}
