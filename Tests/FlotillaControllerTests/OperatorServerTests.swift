@testable import FlotillaController
import FlotillaCore
@testable import FlotillaHTTP
import FlotillaTestSupport
import Foundation
import Logging
import Testing

/// The controller's HTTP server without a broker: read-only pages, the token on every action,
/// slow and oversized clients, the loopback default.
@Suite("Operator HTTP server", .timeLimit(.minutes(1)))
struct OperatorServerTests {
    static let token = "s3cret-token-0123456789abcdef"

    /// A controller (never run) whose HTTP server serves `body`.
    static func serving<T: Sendable>(token: String? = Self.token, idleTimeout: Duration = .seconds(10), job: String = "job-http",
                                     _ body: (ControllerService, String) async throws -> T) async throws -> T {
        var settings = OperatorSettings(token: try token.map { try ActionToken($0) })
        settings.idleTimeout = idleTimeout
        var options = ControllerOptions(job: job, brokers: "127.0.0.1:1")
        options.http = settings
        let service = ControllerService(options: options, backend: ExternalPodBackend(), logger: Logger(label: "test"))
        let server = service.operatorServer(settings) { _ in }
        return try await server.serving {
            try await body(service, try #require(server.url))
        }
    }

    /// A snapshot with one done, one in-flight and one pending shard, fed to the metrics.
    static func fill(_ service: ControllerService) {
        var ledger = Fixtures.ledger(shards: 3)
        ledger.apply(ack: Fixtures.ack(0, worker: "w1"))
        ledger.apply(shard: Fixtures.shard(1, attempt: 1, reason: .workerLost), partition: 1, offset: 5)
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, running: [(2, 0, 1)], partitions: [0, 1]), receivedAt: Timestamp.now())
        let counts = ledger.phaseCounts
        service.board.update { status in
            status.state = "running"
            status.shards = Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
            status.samplesDone = ledger.samplesDone
            status.totalSamples = 6
            status.reEnqueues = ledger.reEnqueues
            status.workers = ledger.workerViews(now: Timestamp.now())
            status.workerRestarts = 2
            status.duplicates = 1
            status.desiredWorkers = 2
        }
        service.metrics.update(from: service.board.status)
    }

    @Test("/status, /metrics and /healthz answer with the board's snapshot; unknown paths 404")
    func endpoints() async throws {
        try await Self.serving { service, url in
            Self.fill(service)
            let status = try await HTTPTestClient.get("\(url)/status")
            #expect(status.status == 200)
            #expect(status.headers["Content-Type"].first == "application/json")
            let decoded = try JSONDecoder().decode(ControllerStatus.self, from: Data(status.body.utf8))
            #expect(decoded.job == "job-http" && decoded.state == "running")
            #expect(decoded.shards["done"] == 1 && decoded.shards["in-flight"] == 1 && decoded.shards["pending"] == 1)
            #expect(decoded.samplesDone == 2)
            #expect(decoded.workers.map(\.id) == ["w1"] && decoded.workers.first?.partitions == [0, 1])

            let metrics = try await HTTPTestClient.get("\(url)/metrics")
            #expect(metrics.status == 200)
            let lines = Set(metrics.body.split(separator: "\n").map(String.init))
            for expected in [
                #"flotilla_controller_shards{job="job-http",state="done"} 1.0"#,
                #"flotilla_controller_samples_total{job="job-http"} 2"#,
                #"flotilla_controller_reenqueues_total{job="job-http",reason="worker-lost"} 1"#,
                #"flotilla_controller_reenqueues_total{job="job-http",reason="stolen"} 0"#,
                #"flotilla_controller_worker_restarts_total{job="job-http"} 2"#,
                #"flotilla_controller_duplicates_total{job="job-http"} 1"#,
                #"flotilla_controller_backlog_samples{job="job-http"} 4.0"#,
                #"flotilla_controller_desired_workers{job="job-http"} 2.0"#,
                "# TYPE flotilla_controller_shards gauge",
                "# HELP flotilla_controller_samples_total Samples in done shards.",
            ] {
                #expect(lines.contains(expected), "missing \(expected) in\n\(metrics.body)")
            }
            let health = try await HTTPTestClient.get("\(url)/healthz?verbose=1")
            #expect(health.status == 200 && health.body.hasPrefix("ok running"))
            #expect(try await HTTPTestClient.get("\(url)/nope").status == 404)
        }
    }

    @Test("Every action needs the bearer token: none or a wrong one is 401, the right one passes the guard")
    func tokenOnEveryAction() async throws {
        try await Self.serving { _, url in
            for action in ["scale?workers=3", "cancel"] {
                let bare = try await HTTPTestClient.post("\(url)/actions/\(action)")
                #expect(bare.status == 401, "\(action) without a token")
                #expect(bare.headers["WWW-Authenticate"].first == "Bearer")
                for wrong in ["wrong", Self.token + "x", String(Self.token.dropLast()), "", Self.token.uppercased()] {
                    #expect(try await HTTPTestClient.post("\(url)/actions/\(action)", token: wrong).status == 401, "\(action) with '\(wrong)'")
                }
                let basic = try await HTTPTestClient.request("\(url)/actions/\(action)", method: .POST, headers: [("Authorization", "Basic \(Self.token)")])
                #expect(basic.status == 401)
                // Past the guard: not connected to Kafka in this test, so 503, never 401/403.
                #expect(try await HTTPTestClient.post("\(url)/actions/\(action)", token: Self.token).status == 503)
            }
            #expect(try await HTTPTestClient.post("\(url)/actions/scale?workers=-1", token: Self.token).status == 400)
            #expect(try await HTTPTestClient.post("\(url)/actions/scale", token: Self.token).status == 400)
        }
    }

    @Test("Without a configured token every action is refused with 403 and how to enable it")
    func noTokenRefuses() async throws {
        try await Self.serving(token: nil) { _, url in
            for action in ["scale?workers=3", "cancel"] {
                for token in [nil, Self.token, ""] {
                    let reply = try await HTTPTestClient.post("\(url)/actions/\(action)", token: token)
                    #expect(reply.status == 403)
                    #expect(reply.body.contains(ActionToken.variable) && reply.body.contains("--http-token-file"))
                }
            }
            // Read-only pages need nothing.
            #expect(try await HTTPTestClient.get("\(url)/status").status == 200)
        }
    }

    @Test("The token comparison hashes both sides and compares every byte: its time does not depend on where a guess differs")
    func constantTime() throws {
        let token = try ActionToken(Self.token)
        #expect(token.matches(Self.token) && !token.matches(Self.token + " ") && !token.matches(""))
        #expect(ActionToken.constantTimeEqual([1, 2, 3], [1, 2, 3]) && !ActionToken.constantTimeEqual([1, 2, 3], [1, 2, 4]))
        #expect(!ActionToken.constantTimeEqual([1, 2], [1, 2, 3]))
        #expect(throws: FlotillaError.self) { try ActionToken("short") }
        // Guesses wrong in the first byte and in the last byte take the same time (within noise).
        let first = "X" + Self.token.dropFirst(), last = Self.token.dropLast() + "X"
        func time(_ guess: String) -> Duration {
            ContinuousClock().measure { for _ in 0..<20_000 { _ = token.matches(guess) } }
        }
        var ratios: [Double] = []
        for _ in 0..<5 { ratios.append(time(first) / time(String(last))) }
        let median = ratios.sorted()[2]
        // Wide bounds: the machine may be busy; an early-exit comparison of the raw token would
        // still pass (hashing dominates), so this guards against a slow path, not a timing leak.
        #expect(median > 0.5 && median < 2, "first-byte vs last-byte mismatch time ratio \(median)")
    }

    @Test("Token from FLOTILLA_HTTP_TOKEN, FLOTILLA_HTTP_TOKEN_FILE or a file; the file wins; an absent file from the environment is no token")
    func tokenSources() throws {
        #expect(try ActionToken.load(environment: [:]) == nil)
        #expect(try ActionToken.load(environment: [ActionToken.variable: Self.token])?.matches(Self.token) == true)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString)").path
        try "from-the-file-0123456789\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let environment = [ActionToken.variable: Self.token, ActionToken.fileVariable: path]
        #expect(try ActionToken.load(environment: environment)?.matches("from-the-file-0123456789") == true)
        #expect(try ActionToken.load(file: path, environment: [:])?.matches("from-the-file-0123456789") == true)
        #expect(throws: FlotillaError.self) { try ActionToken.load(file: "/nonexistent/token", environment: [:]) }
        // A file the environment names that does not exist (an optional Secret not created): no token.
        #expect(try ActionToken.load(environment: [ActionToken.fileVariable: "/nonexistent/token"]) == nil)
    }

    @Test("A slowloris client (a request sent byte by byte) blocks no one, and is cut off after the idle timeout")
    func slowloris() async throws {
        try await Self.serving(idleTimeout: .seconds(1)) { _, url in
            let port = try #require(Int(url.split(separator: ":").last ?? ""))
            let socket = try RawSocket(port: port)
            let partial = Array("GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8)
            let started = ContinuousClock.now
            let writer = Task.detached {
                var sent = 0
                for byte in partial + Array(repeating: UInt8(ascii: "a"), count: 100) {
                    guard socket.send([byte]) else { break }
                    sent += 1
                    try? await Task.sleep(for: .milliseconds(50))
                }
                return sent
            }
            // Other clients are served at once meanwhile.
            for _ in 0..<20 {
                let before = ContinuousClock.now
                #expect(try await HTTPTestClient.get("\(url)/healthz").status == 200)
                #expect(ContinuousClock.now - before < .seconds(1))
            }
            // The server closes the half-sent request once it has been idle (no complete request) for 1 s.
            let closed = await Task.detached { socket.waitForClose(timeout: .seconds(5)) }.value
            let after = ContinuousClock.now - started
            #expect(closed, "the slow connection stayed open")
            #expect(after < .seconds(4), "closed after \(after)")
            writer.cancel()
            let sent = await writer.value
            #expect(sent < partial.count + 100, "all of it was accepted: \(sent) bytes")
            socket.close()
        }
    }

    @Test("Oversized bodies and heads are refused, and other requests go on meanwhile")
    func oversized() async throws {
        try await Self.serving { _, url in
            async let big = HTTPTestClient.request("\(url)/actions/scale?workers=2", method: .POST,
                                                   headers: [("Authorization", "Bearer \(Self.token)")],
                                                   body: [UInt8](repeating: 65, count: 4 * 1_024 * 1_024))
            async let hugeHead = HTTPTestClient.request("\(url)/status", headers: [("X-Big", String(repeating: "b", count: 64 * 1_024))])
            for _ in 0..<10 {
                let reply = try await HTTPTestClient.get("\(url)/status")
                #expect(reply.status == 200)
            }
            // 413 (or the connection closed while the client was still uploading): never served.
            let bigStatus = (try? await big)?.status
            #expect(bigStatus == nil || bigStatus == 413, "oversized body got \(String(describing: bigStatus))")
            let headStatus = (try? await hugeHead)?.status
            #expect(headStatus == nil || headStatus! >= 400, "oversized head got \(String(describing: headStatus))")
            let after = try await HTTPTestClient.get("\(url)/status")
            #expect(after.status == 200)
        }
    }

    @Test("Loopback by default: the listening socket is bound to 127.0.0.1, and addresses parse to it")
    func loopbackDefault() async throws {
        #expect(OperatorSettings().address.host == "127.0.0.1")
        #expect(ControllerOptions(job: "j", brokers: "b", httpPort: 0).http?.address.isLoopback == true)
        #expect(try HTTPListenAddress(parsing: ":8080") == HTTPListenAddress(host: "127.0.0.1", port: 8080))
        #expect(try HTTPListenAddress(parsing: "9090").host == "127.0.0.1")
        #expect(try HTTPListenAddress(parsing: "[::1]:7000").url() == "http://[::1]:7000")
        #expect(try HTTPListenAddress(parsing: "0.0.0.0:80").isLoopback == false)
        #expect(throws: FlotillaError.self) { try HTTPListenAddress(parsing: "host:99999") }
        try await Self.serving { _, url in
            #expect(url.hasPrefix("http://127.0.0.1:"))
            let port = try #require(Int(url.split(separator: ":").last ?? ""))
            // /proc/net/tcp lists listening sockets (state 0A) by local address: 0100007F is 127.0.0.1.
            let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
            let suffix = String(format: ":%04X", port)
            var bound: [String] = []
            for line in table.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ").map(String.init)
                if fields.count > 3, fields[3] == "0A", fields[1].hasSuffix(suffix) { bound.append(String(fields[1].prefix(8))) }
            }
            #expect(bound == ["0100007F"])
        }
    }

    @Test("A port in use is refused with a message naming the address")
    func portInUse() async throws {
        try await Self.serving { _, url in
            let port = try #require(Int(url.split(separator: ":").last ?? ""))
            let second = OperatorServer(settings: OperatorSettings(address: HTTPListenAddress(port: port)), logger: Logger(label: "test")) { _ in }
            let error = await #expect(throws: FlotillaError.self) { try await second.serving { 0 } }
            #expect(error?.message.contains("127.0.0.1:\(port)") == true, "\(String(describing: error))")
        }
    }

    @Test("/metrics passes promtool check metrics", .enabled(if: Tools.has("promtool"), "promtool missing: apt-get install prometheus (tools/setup does)"))
    func promtool() async throws {
        try await Self.serving { service, url in
            Self.fill(service)
            let metrics = try await HTTPTestClient.get("\(url)/metrics")
            let check = try CommandRunner.run(["promtool", "check", "metrics"], input: metrics.body)
            #expect(check.status == 0, "promtool: \(check.stdout)\(check.stderr)\n\(metrics.body)")
        }
    }
}

/// Whether a tool is on PATH.
enum Tools {
    static func has(_ name: String) -> Bool {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
    }
}
