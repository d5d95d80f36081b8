import FlotillaCore
import Foundation
import Yams

/// Where the Kubernetes API server is and how to prove who we are: read from the pod's service
/// account (in a cluster) or from a kubeconfig file (outside one).
public struct KubernetesCredentials: Sendable {
    /// `https://HOST:PORT`, no trailing slash.
    public var server: String
    /// The PEM certificates that sign the server's certificate; nil: the system's roots.
    public var certificateAuthority: [UInt8]?
    /// Accept any server certificate (kubeconfig `insecure-skip-tls-verify`).
    public var skipTLSVerify = false
    public var token: BearerToken?
    /// A client certificate and its key, PEM (kubeconfig `client-certificate(-data)`, `client-key(-data)`).
    public var clientCertificate: [UInt8]?
    public var clientKey: [UInt8]?
    /// The namespace the credentials name (the service account's, the context's), if any.
    public var namespace: String?

    public init(server: String, certificateAuthority: [UInt8]? = nil, token: BearerToken? = nil, namespace: String? = nil) {
        self.server = server
        self.certificateAuthority = certificateAuthority
        self.token = token
        self.namespace = namespace
    }

    /// The service-account folder every pod gets.
    public static let serviceAccountFolder = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// `kubeconfig` when given; else in-cluster when `KUBERNETES_SERVICE_HOST` is set; else
    /// `$KUBECONFIG` (its first file) or `~/.kube/config`.
    public static func resolve(kubeconfig: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               serviceAccountFolder: String = serviceAccountFolder) throws(FlotillaError) -> KubernetesCredentials {
        if let kubeconfig { return try fromKubeconfig(path: kubeconfig) }
        if let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty {
            return try inCluster(host: host, port: environment["KUBERNETES_SERVICE_PORT"] ?? "443", folder: serviceAccountFolder)
        }
        let path = environment["KUBECONFIG"].flatMap { $0.split(separator: ":").first.map(String.init) }
            ?? "\(environment["HOME"] ?? NSHomeDirectory())/.kube/config"
        return try fromKubeconfig(path: path)
    }

    /// The pod's own service account: its token (re-read as the kubelet rotates it), CA and namespace.
    public static func inCluster(host: String, port: String, folder: String) throws(FlotillaError) -> KubernetesCredentials {
        let hostPart = host.contains(":") ? "[\(host)]" : host  // an IPv6 address
        let ca = try read("\(folder)/ca.crt", what: "the service account's CA certificate")
        guard FileManager.default.isReadableFile(atPath: "\(folder)/token") else {
            throw FlotillaError(.invalidConfiguration, "no service-account token at \(folder)/token: is automountServiceAccountToken off for the controller's pod?")
        }
        let namespace = (try? String(contentsOfFile: "\(folder)/namespace", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        return KubernetesCredentials(server: "https://\(hostPart):\(port)", certificateAuthority: ca,
                                     token: .file("\(folder)/token"), namespace: namespace)
    }

    /// The current context of a kubeconfig file: its cluster, user and namespace.
    public static func fromKubeconfig(path: String) throws(FlotillaError) -> KubernetesCredentials {
        let text = try String(decoding: read(path, what: "the kubeconfig"), as: UTF8.self)
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let config: JSONValue
        do {
            config = JSONValue(yaml: try Yams.load(yaml: text))
        } catch {
            throw FlotillaError(.invalidConfiguration, "the kubeconfig \(path) is not valid YAML: \(error)")
        }
        func problem(_ text: String) -> FlotillaError { FlotillaError(.invalidConfiguration, "kubeconfig \(path): \(text)") }
        guard let contextName = config["current-context"]?.stringValue, !contextName.isEmpty else { throw problem("no current-context") }
        func entry(_ list: String, _ name: String) throws(FlotillaError) -> JSONValue {
            guard case .array(let items) = config[list] ?? .null,
                  let item = items.first(where: { $0["name"]?.stringValue == name }) else {
                throw problem("\(list) has no entry named '\(name)'")
            }
            return item[String(list.dropLast())] ?? .object([:])  // "clusters" → "cluster"
        }
        let context = try entry("contexts", contextName)
        guard let clusterName = context["cluster"]?.stringValue, let userName = context["user"]?.stringValue else {
            throw problem("context '\(contextName)' names no cluster or user")
        }
        let cluster = try entry("clusters", clusterName), user = try entry("users", userName)
        guard let server = cluster["server"]?.stringValue, server.hasPrefix("https://") else {
            throw problem("cluster '\(clusterName)' has no https:// server")
        }
        var credentials = KubernetesCredentials(server: server.hasSuffix("/") ? String(server.dropLast()) : server,
                                                namespace: context["namespace"]?.stringValue)
        credentials.certificateAuthority = try pem(cluster, "certificate-authority", folder: folder, problem: problem)
        credentials.skipTLSVerify = cluster["insecure-skip-tls-verify"] == .bool(true)
        credentials.clientCertificate = try pem(user, "client-certificate", folder: folder, problem: problem)
        credentials.clientKey = try pem(user, "client-key", folder: folder, problem: problem)
        if let token = user["token"]?.stringValue {
            credentials.token = .fixed(token)
        } else if let file = user["tokenFile"]?.stringValue {
            credentials.token = .file(file.hasPrefix("/") ? file : "\(folder)/\(file)")
        } else if user["exec"] != nil || user["auth-provider"] != nil {
            throw problem("user '\(userName)' gets its credentials from a plugin (exec or auth-provider), which Flotilla does not run; give it a token, a tokenFile or a client certificate")
        }
        if credentials.token == nil, credentials.clientCertificate == nil {
            throw problem("user '\(userName)' has no token, tokenFile or client certificate")
        }
        return credentials
    }

    /// `<key>-data` (base64) or `<key>` (a file, relative to the kubeconfig's folder).
    private static func pem(_ object: JSONValue, _ key: String, folder: String,
                            problem: (String) -> FlotillaError) throws(FlotillaError) -> [UInt8]? {
        if let data = object["\(key)-data"]?.stringValue {
            guard let bytes = Data(base64Encoded: data, options: .ignoreUnknownCharacters) else { throw problem("\(key)-data is not base64") }
            return [UInt8](bytes)
        }
        guard let file = object[key]?.stringValue else { return nil }
        return try read(file.hasPrefix("/") ? file : "\(folder)/\(file)", what: key)
    }

    private static func read(_ path: String, what: String) throws(FlotillaError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FlotillaError(.invalidConfiguration, "cannot read \(what) at \(path)")
        }
        return [UInt8](data)
    }
}

/// A bearer token: given, or read from a file that may be rewritten (a projected service-account
/// token is rotated by the kubelet; readers are expected to pick the new one up).
public enum BearerToken: Sendable, Hashable {
    case fixed(String)
    case file(String)
}

extension JSONValue {
    /// The value Yams loaded (`Yams.load`): mappings, sequences and YAML 1.1 scalars.
    init(yaml: Any?) {
        switch yaml {
        case let value as Bool: self = .bool(value)
        case let value as Int: self = .int(Int64(value))
        case let value as Double: self = .double(value)
        case let value as String: self = .string(value)
        case let value as [Any]: self = .array(value.map { JSONValue(yaml: $0) })
        case let value as [String: Any]: self = .object(value.mapValues { JSONValue(yaml: $0) })
        case let value as [AnyHashable: Any]:
            self = .object(Dictionary(value.map { ("\($0.key)", JSONValue(yaml: $0.value)) }, uniquingKeysWith: { $1 }))
        case .none: self = .null
        case .some(let other): self = "\(other)" == "<null>" ? .null : .string("\(other)")
        }
    }
}
