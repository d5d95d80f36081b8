@testable import FlotillaController
import FlotillaCore
import FlotillaTestSupport
import Foundation
import Logging
import Testing

/// Real HTTP requests (curl) against the status server.
@Suite("Status server over HTTP", .timeLimit(.minutes(1)))
struct StatusServerTests {
    static func get(_ url: String, method: String = "GET") throws -> (status: Int, body: String, headers: String) {
        let output = try CommandRunner.run(["curl", "-s", "-S", "-X", method, "-D", "-", "--max-time", "5", url])
        let parts = output.stdout.components(separatedBy: "\r\n\r\n")
        let head = parts.first ?? ""
        let status = Int(head.split(separator: " ").dropFirst().first ?? "") ?? -1
        return (status, parts.dropFirst().joined(separator: "\r\n\r\n"), head)
    }

    @Test("/status, /metrics and /healthz answer with the board's snapshot; other paths 404, other methods 405")
    func endpoints() throws {
        let board = StatusBoard(job: "job-http")
        var ledger = Fixtures.ledger(shards: 3)
        ledger.apply(ack: Fixtures.ack(0, worker: "w1"))
        ledger.apply(shard: Fixtures.shard(1, attempt: 1, reason: .workerLost), partition: 1, offset: 5)
        ledger.apply(heartbeat: Fixtures.heartbeat("w1", at: 1_000, running: [(2, 0, 1)], partitions: [0, 1]), receivedAt: Timestamp.now())
        let counts = ledger.phaseCounts
        board.update { status in
            status.state = "running"
            status.shards = Dictionary(uniqueKeysWithValues: counts.map { ($0.key.rawValue, $0.value) })
            status.samplesDone = ledger.samplesDone
            status.reEnqueues = ledger.reEnqueues
            status.workers = ledger.workerViews(now: Timestamp.now())
            status.workerRestarts = 2
            status.duplicates = 1
        }
        let server = try StatusServer(port: 0, logger: Logger(label: "test")) { board.respond(to: $0) }
        defer { server.stop() }
        #expect(server.port > 0)

        let status = try Self.get("\(server.address)/status")
        #expect(status.status == 200)
        #expect(status.headers.contains("Content-Type: application/json"))
        let decoded = try JSONDecoder().decode(ControllerStatus.self, from: Data(status.body.utf8))
        #expect(decoded.job == "job-http" && decoded.state == "running")
        #expect(decoded.shards["done"] == 1 && decoded.shards["in-flight"] == 1 && decoded.shards["pending"] == 1)
        #expect(decoded.samplesDone == 2)
        #expect(decoded.workers.map(\.id) == ["w1"] && decoded.workers.first?.partitions == [0, 1])

        let metrics = try Self.get("\(server.address)/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.body.contains("flotilla_controller_shards{job=\"job-http\",state=\"done\"} 1"))
        #expect(metrics.body.contains("flotilla_controller_samples_total{job=\"job-http\"} 2"))
        #expect(metrics.body.contains("flotilla_controller_reenqueues_total{job=\"job-http\",reason=\"worker-lost\"} 1"))
        #expect(metrics.body.contains("flotilla_controller_reenqueues_total{job=\"job-http\",reason=\"stolen\"} 0"))
        #expect(metrics.body.contains("flotilla_controller_worker_restarts_total{job=\"job-http\"} 2"))
        #expect(metrics.body.contains("flotilla_controller_duplicates_total{job=\"job-http\"} 1"))
        #expect(metrics.body.contains("# TYPE flotilla_controller_shards gauge"))

        let health = try Self.get("\(server.address)/healthz?verbose=1")
        #expect(health.status == 200 && health.body.hasPrefix("ok"))
        #expect(try Self.get("\(server.address)/nope").status == 404)
        #expect(try Self.get("\(server.address)/status", method: "POST").status == 405)
        #expect(status.headers.contains("Connection: close"))
    }

    @Test("Many requests in a row, and a client that sends nothing does not block the next one for long")
    func sequentialRequests() throws {
        let server = try StatusServer(port: 0, logger: Logger(label: "test")) { _ in HTTPResponse(status: 200, body: "hi") }
        defer { server.stop() }
        // A silent client: connect and say nothing.
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(server.port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        defer { close(silent) }
        let started = ContinuousClock.now
        for _ in 0..<20 {
            #expect(try Self.get("\(server.address)/").body == "hi")
        }
        #expect(ContinuousClock.now - started < .seconds(5))
    }

    @Test("A port in use is refused with a message naming it")
    func portInUse() throws {
        let first = try StatusServer(port: 0, logger: Logger(label: "test")) { _ in HTTPResponse(status: 200, body: "") }
        defer { first.stop() }
        let error = #expect(throws: FlotillaError.self) {
            _ = try StatusServer(port: first.port, logger: Logger(label: "test")) { _ in HTTPResponse(status: 200, body: "") }
        }
        #expect(error?.message.contains("127.0.0.1:\(first.port)") == true)
    }
}
