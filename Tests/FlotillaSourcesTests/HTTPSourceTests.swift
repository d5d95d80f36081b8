import FlotillaCore
@testable import FlotillaSources
import Foundation
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// HTTP sources against real servers: nginx (range requests) and python's http.server (ignores Range).
@Suite("HTTP sources", .timeLimit(.minutes(1)))
struct HTTPSourceTests {
    let options = HTTPOptions(idleTimeout: 5, totalTimeout: 30)

    @Test("nginx: shard over HTTP, read every shard with Range requests")
    func nginxEndToEnd() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer.nginx(dir: dir.path)
        defer { server.stop() }
        let (text, values) = jsonLines(523, lineEnding: "\r\n")
        let body = Array(text.utf8) + Array("\n\n".utf8)
        let url = try server.serve("data/in.jsonl", body)
        let (logger, logs) = RecordingLogHandler.logger()

        let plan = try await HTTPSharder.plan(
            url: url, format: .jsonl, idField: "id", samplesPerShard: 50, maxSampleBytes: 4096, options: options, logger: logger
        )
        #expect(plan.ranges.count == 11)
        #expect(plan.samples == 523)
        // The same cut as the file sharder on the same bytes.
        let local = try dir.write("local.jsonl", body)
        let fileRanges = try FileSharder.shard(path: local, format: .jsonl, idField: "id", samplesPerShard: 50, maxSampleBytes: 4096)
        #expect(plan.ranges.map(\.range) == fileRanges.map(\.range))

        let reader = ShardReader(logger: logger, http: options)
        var samples: [Sample] = []
        for range in plan.ranges { samples += try await reader.read(.lines(range)) }
        #expect(samples.count == 523)
        #expect(samples.map(\.id) == (0..<523).map { "s\($0)" })
        #expect(samples.map(\.value) == values)
        #expect(logs.warnings.isEmpty)
        // The reads really were range requests: nginx logged 206 for each shard.
        let access = try String(contentsOfFile: dir.path + "/access.log", encoding: .utf8)
        #expect(access.components(separatedBy: "\" 206 ").count - 1 == 11)
    }

    @Test("nginx: CSV over HTTP keeps the header in every shard")
    func nginxCSV() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer.nginx(dir: dir.path)
        defer { server.stop() }
        var text = "key,value\n"
        for index in 0..<30 { text += "k\(index),\"v,\(index)\"\n" }
        let url = try server.serve("t.csv", Array(text.dropLast().utf8))  // no trailing newline
        let ranges = try await HTTPSharder.shard(
            url: url, format: .csv, idField: "key", samplesPerShard: 7, maxSampleBytes: 100, options: options, logger: Logger(label: "test")
        )
        #expect(ranges.count == 5)
        let reader = ShardReader(logger: Logger(label: "test"), http: options)
        var samples: [Sample] = []
        for range in ranges { samples += try await reader.read(.lines(range)) }
        #expect(samples.map(\.id) == (0..<30).map { "k\($0)" })
        #expect(samples[29].value == .object(["key": .string("k29"), "value": .string("v,29")]))
    }

    @Test("HTTP 404 and 403 are errors naming the URL and the status")
    func notFoundAndForbidden() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer.nginx(dir: dir.path)
        defer { server.stop() }
        try server.serve("forbidden/x.jsonl", Array("{}\n".utf8))
        let missing = server.baseURL + "/missing.jsonl"
        let notFound = await flotillaError {
            _ = try await HTTPSharder.shard(url: missing, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100, options: options, logger: Logger(label: "test"))
        }
        #expect(notFound?.code == .invalidInput)
        #expect(notFound?.message == "HEAD \(missing): HTTP 404 Not Found")

        let forbidden = server.baseURL + "/forbidden/x.jsonl"
        let denied = await flotillaError {
            _ = try await HTTPSharder.shard(url: forbidden, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100, options: options, logger: Logger(label: "test"))
        }
        #expect(denied?.message == "HEAD \(forbidden): HTTP 403 Forbidden")

        // The reader's GET names its status the same way.
        let reader = ShardReader(logger: Logger(label: "test"), http: options)
        let range = LineSource(location: .url(missing), range: ByteRange(offset: 0, length: 3, firstLine: 1, format: .jsonl))
        let readError = await flotillaError { _ = try await reader.read(.lines(range)) }
        #expect(readError?.message == "GET \(missing): HTTP 404 Not Found")
        let broken = LineSource(location: .url(server.baseURL + "/broken"), range: range.range)
        let serverError = await flotillaError { _ = try await reader.read(.lines(broken)) }
        #expect(serverError?.message == "GET \(server.baseURL)/broken: HTTP 500 Internal Server Error")
    }

    @Test("An empty resource is an error; a shard past the end of a changed resource too")
    func emptyAndChanged() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer.nginx(dir: dir.path)
        defer { server.stop() }
        let empty = try server.serve("empty.jsonl", [])
        let error = await flotillaError {
            _ = try await HTTPSharder.shard(url: empty, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100, options: options, logger: Logger(label: "test"))
        }
        #expect(error?.message == "input \(empty) is empty")

        let url = try server.serve("c.jsonl", Array(jsonLines(40).text.utf8))
        let ranges = try await HTTPSharder.shard(url: url, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 1000, options: options, logger: Logger(label: "test"))
        try server.serve("c.jsonl", Array(jsonLines(15).text.utf8))
        let reader = ShardReader(logger: Logger(label: "test"), http: options)
        let changed = await flotillaError { _ = try await reader.read(.lines(ranges[3])) }
        #expect(changed?.message.hasPrefix("input changed since submit: \(url) bytes ") == true)
    }

    @Test("Connection refused is an error naming the URL")
    func connectionRefused() async throws {
        let port = try LocalPort.free()  // nothing listens there
        let url = "http://127.0.0.1:\(port)/x.jsonl"
        let error = await flotillaError {
            _ = try await HTTPSharder.shard(url: url, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100, options: options, logger: Logger(label: "test"))
        }
        #expect(error?.code == .invalidInput)
        #expect(error?.message == "HEAD \(url): connection refused")
    }

    @Test("A server that never answers times out within the idle timeout")
    func timeout() async throws {
        // A listening socket that never accepts: the connection opens, no response ever comes.
        let socket = try LocalPort.bound()
        defer { close(socket.descriptor) }
        #expect(listen(socket.descriptor, 8) == 0)
        let url = "http://127.0.0.1:\(socket.port)/x.jsonl"
        let start = ContinuousClock.now
        let error = await flotillaError {
            _ = try await HTTPSharder.shard(
                url: url, format: .jsonl, samplesPerShard: 10, maxSampleBytes: 100,
                options: HTTPOptions(idleTimeout: 1, totalTimeout: 5), logger: Logger(label: "test")
            )
        }
        #expect(error?.message.hasPrefix("HEAD \(url): timed out") == true)
        #expect(ContinuousClock.now - start < .seconds(4))
    }

    @Test("A server that ignores Range: whole-body fallback, correct samples, one warning")
    func serverIgnoringRange() async throws {
        let dir = try TempDir()
        defer { dir.remove() }
        let server = try TestServer.pythonHTTPServer(dir: dir.path)
        defer { server.stop() }
        let (text, values) = jsonLines(205)
        let url = try server.serve("plain.jsonl", Array(text.utf8))
        let (logger, logs) = RecordingLogHandler.logger()
        let ranges = try await HTTPSharder.shard(
            url: url, format: .jsonl, idField: "id", samplesPerShard: 20, maxSampleBytes: 4096, options: options, logger: logger
        )
        #expect(ranges.count == 11)
        let reader = ShardReader(logger: logger, http: options)
        var samples: [Sample] = []
        for range in ranges.reversed() { samples = try await reader.read(.lines(range)) + samples }
        #expect(samples.map(\.id) == (0..<205).map { "s\($0)" })
        #expect(samples.map(\.value) == values)
        #expect(logs.warnings.count == 1)
        #expect(logs.warnings.first?.contains("does not take range requests") == true)
    }

    @Test("A URL that is not http(s) is refused")
    func badURL() async {
        let error = await flotillaError {
            _ = try await HTTPSharder.shard(url: "ftp://x/y", format: .jsonl, samplesPerShard: 1, maxSampleBytes: 10, logger: Logger(label: "test"))
        }
        #expect(error?.message == "input URL 'ftp://x/y' is not an http:// or https:// URL")
    }
}
