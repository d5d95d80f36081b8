@testable import FlotillaController
import FlotillaCore
import Foundation
import Logging
import Testing

/// The `kubernetes` pod backend against a local HTTPS server that answers like the Kubernetes
/// API (Fixtures/kubernetes; no API server can run here): pods made from the template, retries,
/// RBAC denials, exits and their reasons, adoption, token rotation, kubeconfig and TLS trust.
@Suite("Kubernetes pod backend", .timeLimit(.minutes(2)))
struct KubernetesPodBackendTests {
    static let template: JSONValue = .object([
        "apiVersion": "v1", "kind": "Pod",
        "metadata": .object(["labels": .object(["team": "ml"])]),
        "spec": .object([
            "terminationGracePeriodSeconds": 60,
            "restartPolicy": "Always",
            "containers": .array([
                .object(["name": "sidecar", "image": "busybox"]),
                .object(["name": "worker", "image": "flotilla:0.1", "resources": .object(["limits": .object(["cpu": "1"])])]),
            ]),
        ]),
    ])
    static let arguments = ["worker", "job-k8s", "--brokers", "kafka:9092", "--prefix", "flotilla"]

    /// A server, in-cluster style credentials for it (a service-account folder with token, CA
    /// and namespace), and a connected backend, for `body`.
    static func withBackend(token: String = "token-1", prepare: (KubernetesFixtureServer) -> Void = { _ in },
                            _ body: @escaping @Sendable (KubernetesPodBackend, KubernetesFixtureServer, String) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-k8s-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let server = try KubernetesFixtureServer(folder: folder)
        try Data(server.certificate).write(to: URL(fileURLWithPath: "\(folder)/ca.crt"))
        try token.write(toFile: "\(folder)/token", atomically: true, encoding: .utf8)
        try "flotilla\n".write(toFile: "\(folder)/namespace", atomically: true, encoding: .utf8)
        prepare(server)
        try await server.serving { url in
            let port = String(url.split(separator: ":").last!)
            let credentials = try KubernetesCredentials.resolve(kubeconfig: nil, environment: ["KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port],
                                                                serviceAccountFolder: folder)
            let backend = try await KubernetesPodBackend.connect(job: "job-k8s", baseArguments: arguments, template: try PodTemplate(manifest: template),
                                                                 credentials: credentials, namespace: nil, logger: Logger(label: "test"))
            do {
                try await body(backend, server, folder)
            } catch {
                await backend.close()
                throw error
            }
            await backend.close()
        }
    }

    /// Polls `list` (which refreshes in the background) until `condition` holds.
    static func eventually(_ backend: KubernetesPodBackend, _ condition: ([WorkerPod]) -> Bool) async throws -> [WorkerPod] {
        for _ in 0..<100 {
            let pods = await backend.list()
            if condition(pods) { return pods }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("the pod listing never met the condition: \(await backend.list())")
        return await backend.list()
    }

    @Test("a worker pod is the template with its name, labels, restartPolicy Never and the worker's args, sent with the token")
    func createsPodsFromTheTemplate() async throws {
        try await Self.withBackend { backend, server, _ in
            #expect(backend.namespace == "flotilla")
            let pod = try await backend.start(worker: "w1")
            #expect(pod.id == "w1" && !pod.exited)
            let post = try #require(server.received("POST").first)
            #expect(post.path == "/api/v1/namespaces/flotilla/pods")
            #expect(post.authorization == "Bearer token-1")
            let body = try #require(post.body)
            let name = try #require(body["metadata"]?["name"]?.stringValue)
            #expect(name.hasPrefix("flotilla-job-k8s-w1-"))
            #expect(body["metadata"]?["namespace"] == "flotilla")
            let labels = body["metadata"]?["labels"]
            #expect(labels?["flotilla.io/job"] == "job-k8s" && labels?["flotilla.io/worker"] == "w1")
            #expect(labels?["app.kubernetes.io/component"] == "worker" && labels?["team"] == "ml")
            #expect(body["spec"]?["restartPolicy"] == "Never")
            #expect(body["spec"]?["terminationGracePeriodSeconds"] == 60)
            guard case .array(let containers) = body["spec"]?["containers"] ?? .null else { Issue.record("no containers"); return }
            #expect(containers[0]["args"] == nil, "only the worker container gets the args")
            #expect(containers[1]["args"] == .array((Self.arguments + ["--worker-id", "w1"]).map(JSONValue.string)))
            #expect(containers[1]["resources"]?["limits"]?["cpu"] == "1")
            let listing = try #require(server.received("GET").first)
            #expect(listing.query == "labelSelector=flotilla.io%2Fjob%3Djob-k8s")
        }
    }

    @Test("429 (with Retry-After) and 503 are retried; a retried create that landed (409 for our own pod) counts as done")
    func retriesWhatMayPass() async throws {
        try await Self.withBackend { backend, server, _ in
            server.fail("POST", status: 429, fixture: "error-too-many-requests", retryAfter: 0)
            server.fail("POST", status: 503, fixture: "error-unavailable")
            _ = try await backend.start(worker: "w1")
            #expect(server.received("POST").count == 3)
            #expect(server.pods.withLock { $0.count } == 1)
            // The next create "times out" after landing: the server has the pod, the retry gets 409.
            let taken = "flotilla-job-k8s-w2-"
            server.fail("POST", status: 503, fixture: "error-unavailable", afterCreating: true)
            _ = try await backend.start(worker: "w2")
            #expect(server.pods.withLock { $0.values.filter { $0.worker == "w2" }.count } == 1)
            #expect(server.received("POST").filter { $0.body?["metadata"]?["name"]?.stringValue?.hasPrefix(taken) == true }.count == 2)
        }
    }

    @Test("an RBAC denial names the verb, the resource and the namespace, and is a configuration error")
    func rbacDenials() async throws {
        try await Self.withBackend { backend, server, _ in
            server.fail("POST", status: 403, fixture: "error-forbidden")
            let error = await #expect(throws: FlotillaError.self) { _ = try await backend.start(worker: "w1") }
            #expect(error?.code == .invalidConfiguration)
            #expect(error?.message.contains("denied 'create' on pods in namespace 'flotilla'") == true)
            #expect(error?.message.contains("cannot create resource \"pods\"") == true)
            #expect(server.received("POST").count == 1, "a denial is not retried")
        }
        // A denied list fails the controller's start.
        await #expect(throws: FlotillaError.self) {
            try await Self.withBackend(prepare: { $0.fail("GET", status: 403, fixture: "error-forbidden") }) { _, _, _ in
                Issue.record("connected although listing was denied")
            }
        }
    }

    @Test("an invalid pod is a configuration error naming the field")
    func invalidPod() async throws {
        try await Self.withBackend { backend, server, _ in
            server.fail("POST", status: 422, fixture: "error-invalid")
            let error = await #expect(throws: FlotillaError.self) { _ = try await backend.start(worker: "w1") }
            #expect(error?.message.contains("spec.containers[0].resources.requests") == true)
        }
    }

    @Test("exits are read from the worker container: OOMKilled with 137, ImagePullBackOff, eviction, a pod deleted by hand")
    func exitsAndReasons() async throws {
        try await Self.withBackend { backend, server, _ in
            for id in ["w1", "w2", "w3", "w4", "w5"] { _ = try await backend.start(worker: id) }
            server.setStatus(of: "w1", "status-oomkilled")
            server.setStatus(of: "w2", "status-imagepullbackoff")
            server.setStatus(of: "w3", "status-running")
            server.setStatus(of: "w4", "status-evicted")
            try await Task.sleep(for: .milliseconds(1_100))  // w5 is then older than a listing asked for after its deletion
            server.pods.withLock { pods in pods = pods.filter { $0.value.worker != "w5" } }
            let pods = try await Self.eventually(backend) { pods in pods.filter(\.exited).count == 4 }
            let byID = Dictionary(uniqueKeysWithValues: pods.map { ($0.id, $0) })
            #expect(byID["w1"]?.exitStatus == 137 && byID["w1"]?.exitReason?.contains("OOMKilled") == true)
            #expect(byID["w2"]?.exitReason?.contains("ImagePullBackOff: Back-off pulling image \"flotilla:nope\"") == true)
            #expect(byID["w3"]?.exited == false)
            #expect(byID["w4"]?.exitReason?.contains("Evicted") == true)
            #expect(byID["w5"]?.exitReason?.contains("was deleted") == true)
            // Forgetting an ended pod deletes its object.
            await backend.forget(worker: "w1")
            await backend.forget(worker: "w3")  // running: not forgotten
            #expect(server.received("DELETE").count == 1)
            #expect(await backend.list().map(\.id) == ["w2", "w3", "w4", "w5"])
        }
    }

    @Test("stop deletes with the grace period and waits until the pod is gone; replace deletes at once and makes a new pod")
    func stopAndReplace() async throws {
        try await Self.withBackend { backend, server, _ in
            _ = try await backend.start(worker: "w1")
            _ = try await backend.start(worker: "w2")
            await backend.stop(worker: "w1", grace: .seconds(7))
            let delete = try #require(server.received("DELETE").first)
            #expect(delete.query == "gracePeriodSeconds=60", "the template's terminationGracePeriodSeconds wins")
            let w1 = await backend.list().first { $0.id == "w1" }
            #expect(w1?.exited == true && w1?.stopRequested == true)

            let before = try #require(server.pods.withLock { $0.first { $0.value.worker == "w2" }?.key })
            _ = try await backend.replace(worker: "w2")
            #expect(server.received("DELETE").last?.path.hasSuffix(before) == true)
            #expect(server.received("DELETE").last?.query == "gracePeriodSeconds=0")
            let after = try #require(server.pods.withLock { $0.first { $0.value.worker == "w2" }?.key })
            #expect(after != before)
        }
    }

    @Test("pods of the job that run when the controller starts are adopted by their slot, not started twice")
    func adoption() async throws {
        try await Self.withBackend(prepare: { server in
            server.pods.withLock { $0["flotilla-job-k8s-w1-old1"] = .init(worker: "w1", status: "status-running") }
            server.pods.withLock { $0["flotilla-job-k8s-w2-old2"] = .init(worker: "w2", status: "status-oomkilled") }
        }) { backend, server, _ in
            _ = try await backend.start(worker: "w1")
            #expect(server.received("POST").isEmpty)
            _ = try await backend.start(worker: "w2")  // its old pod had ended: a new one
            #expect(server.received("POST").count == 1)
        }
    }

    @Test("a rotated service-account token is read again when the server rejects the old one")
    func tokenRotation() async throws {
        try await Self.withBackend { backend, server, folder in
            try "token-2".write(toFile: "\(folder)/token", atomically: true, encoding: .utf8)
            server.token.withLock { $0 = "token-2" }
            _ = try await backend.start(worker: "w1")
            #expect(server.received("POST").map(\.authorization) == ["Bearer token-1", "Bearer token-2"])
        }
    }

    @Test("a kubeconfig's current context gives the server, CA data, token and namespace; plugins are refused clearly")
    func kubeconfig() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-kubeconfig-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let server = try KubernetesFixtureServer(namespace: "ml", folder: folder)
        server.token.withLock { $0 = "kube-token" }
        try await server.serving { url in
            let config = """
                apiVersion: v1
                kind: Config
                current-context: lab
                clusters:
                - name: lab-cluster
                  cluster: {server: "\(url)", certificate-authority-data: \(Data(server.certificate).base64EncodedString())}
                contexts:
                - name: other
                  context: {cluster: nowhere, user: nobody}
                - name: lab
                  context: {cluster: lab-cluster, user: lab-user, namespace: ml}
                users:
                - name: lab-user
                  user: {token: kube-token}
                """
            try config.write(toFile: "\(folder)/config", atomically: true, encoding: .utf8)
            let credentials = try KubernetesCredentials.resolve(kubeconfig: nil, environment: ["KUBECONFIG": "\(folder)/config"])
            #expect(credentials.namespace == "ml" && credentials.server == url)
            let backend = try await KubernetesPodBackend.connect(job: "job-k8s", baseArguments: Self.arguments,
                                                                 template: try PodTemplate(manifest: Self.template), credentials: credentials,
                                                                 namespace: nil, logger: Logger(label: "test"))
            _ = try await backend.start(worker: "w1")
            await backend.close()
            #expect(server.received("POST", "/namespaces/ml/pods").count == 1)
        }
        let exec = """
            current-context: eks
            clusters: [{name: c, cluster: {server: "https://example.invalid"}}]
            contexts: [{name: eks, context: {cluster: c, user: u}}]
            users: [{name: u, user: {exec: {command: aws}}}]
            """
        try exec.write(toFile: "\(folder)/exec", atomically: true, encoding: .utf8)
        let error = #expect(throws: FlotillaError.self) { try KubernetesCredentials.fromKubeconfig(path: "\(folder)/exec") }
        #expect(error?.message.contains("plugin") == true)
    }

    @Test("a server whose certificate the CA did not sign is refused")
    func untrustedServer() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-k8s-ca-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let server = try KubernetesFixtureServer(folder: folder)
        let other = try KubernetesFixtureServer.selfSignedCertificate(in: folder, name: "other")
        try await server.serving { url in
            let credentials = KubernetesCredentials(server: url, certificateAuthority: other.certificate, token: .fixed("t"), namespace: "flotilla")
            let started = ContinuousClock.now
            let error = await #expect(throws: FlotillaError.self) {
                _ = try await KubernetesPodBackend.connect(job: "job-k8s", baseArguments: [], template: try PodTemplate(manifest: Self.template),
                                                           credentials: credentials, namespace: nil, logger: Logger(label: "test"))
            }
            #expect(error?.message.contains("certificate") == true, "\(String(describing: error))")
            // The HTTP client's pool retries the handshake until its 5 s connect timeout; Flotilla then stops.
            #expect(ContinuousClock.now - started < .seconds(9), "a certificate failure is not retried")
            #expect(server.requests.withLock { $0.isEmpty }, "no request passed the TLS handshake")
        }
    }

    @Test("pod templates that cannot work are refused with the reason")
    func badTemplates() throws {
        let cases: [(JSONValue, String)] = [
            (.object(["kind": "Deployment", "spec": .object([:])]), "kind must be Pod"),
            (.object(["spec": .object(["containers": .array([])])]), "spec.containers is missing"),
            (.object(["spec": .object(["containers": .array([.object(["name": "a", "image": "x"]), .object(["name": "b", "image": "y"])])])]), "named 'worker'"),
            (.object(["spec": .object(["containers": .array([.object(["name": "worker"])])])]), "no image"),
        ]
        for (manifest, message) in cases {
            let error = #expect(throws: FlotillaError.self) { try PodTemplate(manifest: manifest) }
            #expect(error?.message.contains(message) == true, "\(message)")
        }
        #expect(PodTemplate.dnsPart("Job_2024.x", limit: 30) == "job-2024-x")
    }
}

// Literals keep the template and the expectations above readable.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
}
