import FlotillaCore
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import Synchronization

/// A local HTTPS server that stands in for a Kubernetes API server's pod endpoints, answering
/// with the bodies in Fixtures/kubernetes (see its README: written from the API reference, not
/// recorded from a cluster). It keeps the pods created through it, so list and get reflect them;
/// a test sets a pod's status fixture, scripts failures, and reads every request it got.
final class KubernetesFixtureServer: Sendable {
    struct Recorded: Sendable {
        var method: String
        var path: String
        var query: String
        var authorization: String?
        var body: JSONValue?
    }

    struct Pod: Sendable {
        var worker: String
        var status = "status-pending"
        var created = "2026-12-02T19:04:05Z"
    }

    /// A scripted answer to the next request matching `method`.
    struct Failure: Sendable {
        var method: String
        var status: Int
        var fixture: String
        var retryAfter: Int?
        /// A create that takes effect although its answer is an error (a timeout after the write).
        var afterCreating = false
    }

    let namespace: String
    let job: String
    /// The self-signed certificate (PEM) the server presents, for the client's trust roots.
    let certificate: [UInt8]
    let requests = Mutex<[Recorded]>([])
    let pods = Mutex<[String: Pod]>([:])
    let failures = Mutex<[Failure]>([])
    /// The bearer token accepted; nil accepts any.
    let token = Mutex<String?>(nil)
    private let key: [UInt8]

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/kubernetes").path

    init(namespace: String = "flotilla", job: String = "job-k8s", folder: String) throws {
        self.namespace = namespace
        self.job = job
        (certificate, key) = try Self.selfSignedCertificate(in: folder)
    }

    /// Serves on 127.0.0.1 and a free port while `body` runs; `body` gets `https://127.0.0.1:PORT`.
    func serving<T: Sendable>(_ body: @escaping @Sendable (String) async throws -> T) async throws -> T {
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem)))
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            responder: CallbackResponder { [self] (request: Hummingbird.Request, _: BasicRequestContext) in try await self.respond(to: request) },
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in portSink.yield(channel.localAddress?.port ?? 0) },
            logger: { var logger = Logger(label: "k8s-fixture"); logger.logLevel = .critical; return logger }())
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await app.run(); return nil }
            var port = 0
            for await bound in ports { port = bound; break }
            let url = "https://127.0.0.1:\(port)"
            group.addTask { try await body(url) }
            defer { group.cancelAll() }
            while let result = try await group.next() {
                if let result { return result }
            }
            throw FlotillaError(.internal, "the fixture server stopped")
        }
    }

    /// The requests with `method` whose path ends with `suffix`.
    func received(_ method: String, _ suffix: String = "") -> [Recorded] {
        requests.withLock { $0.filter { $0.method == method && $0.path.hasSuffix(suffix) } }
    }

    func setStatus(of worker: String, _ fixture: String) {
        pods.withLock { pods in
            for (name, pod) in pods where pod.worker == worker { pods[name]!.status = fixture }
        }
    }

    func fail(_ method: String, status: Int, fixture: String, retryAfter: Int? = nil, afterCreating: Bool = false, times: Int = 1) {
        let failure = Failure(method: method, status: status, fixture: fixture, retryAfter: retryAfter, afterCreating: afterCreating)
        failures.withLock { $0 += Array(repeating: failure, count: times) }
    }

    // MARK: - Answers

    private func respond(to request: Hummingbird.Request) async throws -> Response {
        let bytes = try await request.body.collect(upTo: 1 << 20)
        let body = bytes.readableBytes == 0 ? nil : try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))
        let recorded = Recorded(method: request.method.rawValue, path: request.uri.path, query: request.uri.query ?? "",
                               authorization: request.headers[.authorization], body: body)
        requests.withLock { $0.append(recorded) }
        if let expected = token.withLock({ $0 }), recorded.authorization != "Bearer \(expected)" {
            return try reply(401, "error-unauthorized")
        }
        let prefix = "/api/v1/namespaces/\(namespace)/pods"
        let name = recorded.path.hasPrefix(prefix + "/") ? String(recorded.path.dropFirst(prefix.count + 1)) : nil
        let bodyName = body?["metadata"]?["name"]?.stringValue ?? ""
        let worker = body?["metadata"]?["labels"]?["flotilla.io/worker"]?.stringValue ?? "?"
        if let failure = failures.withLock({ list in list.firstIndex { $0.method == recorded.method }.map { list.remove(at: $0) } }) {
            if failure.afterCreating { pods.withLock { $0[bodyName] = Pod(worker: worker) } }
            return try reply(failure.status, failure.fixture, ["name": name ?? bodyName, "verb": recorded.method == "POST" ? "create" : "list"],
                             retryAfter: failure.retryAfter)
        }
        guard recorded.path == prefix || name != nil else { return try reply(404, "error-not-found", ["name": recorded.path]) }
        switch (recorded.method, name) {
        case ("POST", nil):
            let created = pods.withLock { pods -> Bool in
                guard pods[bodyName] == nil else { return false }
                pods[bodyName] = Pod(worker: worker)
                return true
            }
            guard created else { return try reply(409, "error-conflict", ["name": bodyName]) }
            return try reply(201, podJSON(bodyName))
        case ("GET", nil):
            let items = pods.withLock { $0.keys.sorted() }.map(podJSON).joined(separator: ",")
            return try reply(200, text("pod-list", ["items": items]))
        case ("GET", let name?):
            guard pods.withLock({ $0[name] != nil }) else { return try reply(404, "error-not-found", ["name": name]) }
            return try reply(200, podJSON(name))
        case ("DELETE", let name?):
            guard pods.withLock({ $0.removeValue(forKey: name) != nil }) else { return try reply(404, "error-not-found", ["name": name]) }
            return try reply(200, text("pod", ["name": name, "worker": "", "status": text("status-running")]))
        default:
            return try reply(405, text("error-not-found", ["name": recorded.path]))
        }
    }

    private func podJSON(_ name: String) -> String {
        let pod = pods.withLock { $0[name] } ?? Pod(worker: "?")
        return text("pod", ["name": name, "worker": pod.worker, "created": pod.created, "status": text(pod.status)])
    }

    /// A fixture's text with `{{key}}` filled in.
    func text(_ fixture: String, _ values: [String: String] = [:]) -> String {
        var text = (try? String(contentsOfFile: "\(Self.fixtures)/\(fixture).json", encoding: .utf8)) ?? "missing fixture \(fixture)"
        for (key, value) in values.merging(["namespace": namespace, "job": job], uniquingKeysWith: { a, _ in a }) {
            text = text.replacingOccurrences(of: "{{\(key)}}", with: value)
        }
        return text
    }

    private func reply(_ status: Int, _ fixtureOrBody: String, _ values: [String: String] = [:], retryAfter: Int? = nil) throws -> Response {
        let body = fixtureOrBody.hasPrefix("{") ? fixtureOrBody : text(fixtureOrBody, values)
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[HTTPFields.Element.Name("Retry-After")!] = "\(retryAfter)" }
        return Response(status: .init(code: status), headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A key and a self-signed certificate for 127.0.0.1, made by `openssl` in `folder`.
    static func selfSignedCertificate(in folder: String, name: String = "server") throws -> (certificate: [UInt8], key: [UInt8]) {
        let certificate = "\(folder)/\(name).crt", key = "\(folder)/\(name).key"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                             "-keyout", key, "-out", certificate, "-subj", "/CN=127.0.0.1",
                             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let cert = FileManager.default.contents(atPath: certificate),
              let keyData = FileManager.default.contents(atPath: key) else {
            throw FlotillaError(.internal, "openssl could not make a test certificate")
        }
        return ([UInt8](cert), [UInt8](keyData))
    }
}
