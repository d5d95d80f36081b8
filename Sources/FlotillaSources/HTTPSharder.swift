import FlotillaCore
import Logging
import Synchronization

/// Cuts a JSON-lines or CSV resource served over HTTP(S) into byte-range shards on line boundaries.
///
/// A HEAD request checks that the resource exists and whether the server takes range requests;
/// then one streaming GET reads the body once, chunk by chunk (never held whole in memory), through
/// the same ``LineCutter`` as ``FileSharder``, so blank lines, CRLF, the CSV header and the size
/// limit follow the same rules. Workers later fetch each shard with `Range: bytes=a-b`
/// (``ShardReader``).
///
/// A server that does not advertise `Accept-Ranges: bytes` still works: the reader then streams
/// the body from the start up to the shard's end and drops the rest (a warning is logged once per
/// URL per process), so late shards cost more to read.
///
/// Errors are `FlotillaError(.invalidInput)` naming the method, URL and status or network reason:
/// "GET http://127.0.0.1:1/x.jsonl: connection refused", "HEAD http://h/x.jsonl: HTTP 404 Not Found".
/// The body is requested with `Accept-Encoding: identity` so that offsets mean stored bytes.
public enum HTTPSharder {
    /// Shards the resource at `url` (kept as given in the ranges and in `<url>:<line>` sample ids).
    public static func shard(
        url: String, format: LineFormat, idField: IDField? = nil, samplesPerShard: Int, maxSampleBytes: Int,
        options: HTTPOptions = HTTPOptions(), logger: Logger
    ) async throws(FlotillaError) -> [LineSource] {
        try await plan(
            url: url, format: format, idField: idField, samplesPerShard: samplesPerShard,
            maxSampleBytes: maxSampleBytes, options: options, logger: logger
        ).ranges
    }

    /// Like ``shard(url:format:idField:samplesPerShard:maxSampleBytes:options:logger:)``, with sample counts.
    public static func plan(
        url: String, format: LineFormat, idField: IDField? = nil, samplesPerShard: Int, maxSampleBytes: Int,
        options: HTTPOptions = HTTPOptions(), logger: Logger
    ) async throws(FlotillaError) -> ShardPlan {
        var cutter = try LineCutter(
            source: url, format: format, idField: idField,
            samplesPerShard: samplesPerShard, maxSampleBytes: maxSampleBytes
        )
        let client = HTTPClient(options: options)
        let head = try await client.head(url)
        switch head.status {
        case 200..<300:
            if !head.acceptsRanges { RangeFallback.warnOnce(url: url, logger: logger) }
        case 405, 501:
            // Some servers refuse HEAD but serve GET; the GET below decides.
            logger.debug("HEAD refused, sharding with GET only", metadata: ["flotilla.url": "\(url)", "flotilla.status": "\(head.status)"])
        default:
            throw FlotillaError(.invalidInput, "HEAD \(url): HTTP \(head.status) \(HTTPStatus.reason(head.status))")
        }
        try await client.get(url, range: nil, onResponse: { _ throws(FlotillaError) in }, onData: { bytes throws(FlotillaError) in
            try cutter.consume(bytes)
            return true
        })
        if let expected = head.contentLength, head.status / 100 == 2, expected != cutter.consumed {
            throw FlotillaError(
                .invalidInput,
                "input \(url) changed while it was sharded: HEAD said \(expected) bytes, GET returned \(cutter.consumed)"
            )
        }
        let plan = try cutter.plan(at: .url(url))
        logger.debug("sharded HTTP input", metadata: [
            "flotilla.url": "\(url)", "flotilla.shards": "\(plan.ranges.count)", "flotilla.samples": "\(cutter.samples)",
        ])
        return plan
    }
}

/// The once-per-URL warning about servers that ignore range requests.
enum RangeFallback {
    private static let warned = Mutex<Set<String>>([])

    static func warnOnce(url: String, logger: Logger) {
        guard warned.withLock({ $0.insert(url).inserted }) else { return }
        logger.warning(
            "server does not take range requests; each shard read streams the body from its start and drops the rest",
            metadata: ["flotilla.url": "\(url)"]
        )
    }
}
