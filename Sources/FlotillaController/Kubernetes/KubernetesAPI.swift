import AsyncHTTPClient
import FlotillaCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// The few calls the pod backend makes to a Kubernetes API server, over HTTPS, with the
/// credentials' token or client certificate. Each line below is a permission the controller's
/// Role must grant, and nothing else is needed (deploy/rbac.yaml; its test reads these lines):
// rbac: pods create
// rbac: pods get
// rbac: pods list
// rbac: pods delete
///
/// Calls are retried with backoff on 429, 5xx and connection failures (honouring
/// `Retry-After`); a 401 re-reads the token file once (it may just have been rotated); 403
/// becomes an error naming the verb, resource and namespace.
final class KubernetesAPI: Sendable {
    let server: String
    let namespace: String
    private let client: HTTPClient
    private let token: TokenReader?

    /// The HTTP methods the calls use.
    enum Method: String, Sendable {
        case GET, POST, DELETE
    }

    /// An answer: its HTTP status and its JSON body (a Pod, a PodList, a Status).
    struct Response: Sendable {
        var status: Int
        var body: JSONValue
        /// Seconds the server asked to wait before trying again (`Retry-After`).
        var retryAfter: Int?
    }

    init(credentials: KubernetesCredentials, namespace: String) throws(FlotillaError) {
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let ca = credentials.certificateAuthority { tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(ca)) }
            if let certificate = credentials.clientCertificate, let key = credentials.clientKey {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch {
            throw FlotillaError(.invalidConfiguration, "cannot use the Kubernetes credentials' certificates: \(error)")
        }
        if credentials.skipTLSVerify { tls.certificateVerification = .none }
        let configuration = HTTPClient.Configuration(tlsConfiguration: tls, redirectConfiguration: .disallow,
                                                     timeout: .init(connect: .seconds(5), read: .seconds(20)))
        self.client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.server = credentials.server
        self.namespace = namespace
        self.token = credentials.token.map(TokenReader.init)
    }

    func shutdown() async {
        try? await client.shutdown()
    }

    /// `path` under the namespace: "pods", "pods/NAME", "pods?labelSelector=...".
    func url(_ path: String) -> String {
        "\(server)/api/v1/namespaces/\(namespace)/\(path)"
    }

    /// One call, retried for up to `retryFor` on answers that may pass. Returns every other
    /// answer below 400 and the statuses in `accepting` (e.g. 404 for a delete); throws for the rest.
    func call(_ method: Method, _ path: String, body: JSONValue? = nil, verb: String, accepting: Set<Int> = [],
              retryFor: Duration = .seconds(30)) async throws(FlotillaError) -> Response {
        let deadline = ContinuousClock.now + retryFor
        var attempt = 0, reloadedToken = false
        while true {
            attempt += 1
            var pause = Duration.milliseconds(min(5_000, 200 << min(attempt - 1, 5)))
            let failure: String
            do {
                let response = try await send(method, path, body: body)
                if response.status < 400 || accepting.contains(response.status) { return response }
                let message = Self.message(response)
                switch response.status {
                case 401 where !reloadedToken && token != nil:
                    reloadedToken = true  // a rotated token: read the file again, then try once more
                    token?.invalidate()
                    continue
                case 401:
                    throw FlotillaError(.invalidConfiguration, "the Kubernetes API at \(server) rejected the controller's credentials (401 Unauthorized: \(message))")
                case 403:
                    throw FlotillaError(.invalidConfiguration, "the Kubernetes API denied '\(verb)' on pods in namespace '\(namespace)' (403 Forbidden: \(message)); the controller's service account needs create, get, list and delete on pods (deploy/rbac.yaml)")
                case 429, 500...599:
                    failure = "\(response.status): \(message)"
                    if let seconds = response.retryAfter { pause = .seconds(min(30, seconds)) }
                case 400, 422:
                    throw FlotillaError(.invalidConfiguration, "the Kubernetes API refused to \(verb) a worker pod (\(response.status): \(message)); check the pod template")
                default:
                    throw FlotillaError(.internal, "the Kubernetes API answered \(verb) pods with \(response.status): \(message)")
                }
            } catch let error as FlotillaError {
                throw error
            } catch let error as NIOSSLError {
                throw FlotillaError(.invalidConfiguration, "cannot make a TLS connection to the Kubernetes API at \(server) (is the CA certificate the one that signed the server's certificate?): \(error)")
            } catch let error as BoringSSLError {
                throw FlotillaError(.invalidConfiguration, "the Kubernetes API at \(server) presented a certificate its CA did not sign: \(error)")
            } catch {
                failure = "\(error)"
            }
            guard ContinuousClock.now + pause < deadline else {
                throw FlotillaError(.internal, "cannot \(verb) pods at \(server) after \(attempt) attempt(s): \(failure)")
            }
            do { try await Task.sleep(for: pause) } catch { throw FlotillaError(.internal, "cancelled while retrying \(verb) pods") }
        }
    }

    private func send(_ method: Method, _ path: String, body: JSONValue?) async throws -> Response {
        var request = HTTPClientRequest(url: url(path))
        request.method = HTTPMethod(rawValue: method.rawValue)
        request.headers.add(name: "Accept", value: "application/json")
        if let token = try token?.current() { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONEncoder().encode(body)))
        }
        let response = try await client.execute(request, timeout: .seconds(20))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let body = bytes.readableBytes == 0 ? JSONValue.null
            : (try? JSONDecoder().decode(JSONValue.self, from: Data(bytes.readableBytesView))) ?? .string(String(buffer: bytes))
        return Response(status: Int(response.status.code), body: body,
                        retryAfter: response.headers.first(name: "Retry-After").flatMap(Int.init))
    }

    /// A Status object's message, or the body as text.
    private static func message(_ response: Response) -> String {
        if let message = response.body["message"]?.stringValue { return message }
        if case .string(let text) = response.body { return String(text.prefix(300)) }
        return "no message"
    }
}

/// The bearer token, read again from its file once a minute and whenever the server rejects it.
private final class TokenReader: Sendable {
    private let source: BearerToken
    private let cached = Mutex<(token: String, readAt: ContinuousClock.Instant)?>(nil)

    init(_ source: BearerToken) { self.source = source }

    func current() throws -> String {
        switch source {
        case .fixed(let token): return token
        case .file(let path):
            if let cached = cached.withLock({ $0 }), ContinuousClock.now - cached.readAt < .seconds(60) { return cached.token }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw FlotillaError(.invalidConfiguration, "cannot read the Kubernetes token file \(path)")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            cached.withLock { $0 = (token, ContinuousClock.now) }
            return token
        }
    }

    func invalidate() { cached.withLock { $0 = nil } }
}
