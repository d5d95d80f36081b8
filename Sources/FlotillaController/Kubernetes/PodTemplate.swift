import FlotillaCore
import Foundation
import Yams

/// The operator's worker pod (a YAML or JSON Pod manifest), from which the backend makes each
/// worker's pod: its own name and labels, `restartPolicy: Never` (the controller replaces
/// failed workers itself, with backoff), and the `worker` container's `args`.
public struct PodTemplate: Sendable {
    /// The manifest as read.
    public let manifest: JSONValue
    /// The index of the container that runs `flotilla worker`.
    let workerContainer: Int

    /// The label every worker pod of a job carries (its value: the job id).
    public static let jobLabel = "flotilla.io/job"
    /// The label naming the worker slot ("w1", ...).
    public static let workerLabel = "flotilla.io/worker"

    public init(manifest: JSONValue, source: String = "the pod template") throws(FlotillaError) {
        func problem(_ text: String) -> FlotillaError { FlotillaError(.invalidConfiguration, "\(source): \(text)") }
        guard case .object = manifest else { throw problem("must be a Pod manifest (a mapping)") }
        if let kind = manifest["kind"]?.stringValue, kind != "Pod" { throw problem("kind must be Pod, not \(kind)") }
        if let version = manifest["apiVersion"]?.stringValue, version != "v1" { throw problem("apiVersion must be v1, not \(version)") }
        guard case .array(let containers) = manifest["spec"]?["containers"] ?? .null, !containers.isEmpty else {
            throw problem("spec.containers is missing or empty")
        }
        if let index = containers.firstIndex(where: { $0["name"]?.stringValue == "worker" }) {
            workerContainer = index
        } else if containers.count == 1 {
            workerContainer = 0
        } else {
            throw problem("none of its \(containers.count) containers is named 'worker' (the one that runs `flotilla worker`)")
        }
        guard containers[workerContainer]["image"]?.stringValue?.isEmpty == false else {
            throw problem("the worker container has no image")
        }
        self.manifest = manifest
    }

    /// Reads a template file.
    public static func load(path: String) throws(FlotillaError) -> PodTemplate {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FlotillaError(.invalidConfiguration, "cannot read the pod template \(path)")
        }
        let value: JSONValue
        do {
            value = JSONValue(yaml: try Yams.load(yaml: String(decoding: data, as: UTF8.self)))
        } catch {
            throw FlotillaError(.invalidConfiguration, "the pod template \(path) is not valid YAML: \(error)")
        }
        return try PodTemplate(manifest: value, source: "the pod template \(path)")
    }

    /// Worker `worker`'s pod, named `name`, running `flotilla <arguments>`.
    func pod(name: String, namespace: String, job: String, worker: String, arguments: [String]) -> JSONValue {
        var pod = manifest.objectValue
        var metadata = (pod["metadata"] ?? .object([:])).objectValue
        for key in ["generateName", "resourceVersion", "uid", "creationTimestamp", "selfLink", "managedFields"] { metadata[key] = nil }
        metadata["name"] = .string(name)
        metadata["namespace"] = .string(namespace)
        var labels = (metadata["labels"] ?? .object([:])).objectValue
        labels["app.kubernetes.io/name"] = .string("flotilla")
        labels["app.kubernetes.io/component"] = .string("worker")
        labels[Self.jobLabel] = .string(Self.labelValue(job))
        labels[Self.workerLabel] = .string(Self.labelValue(worker))
        metadata["labels"] = .object(labels)
        var spec = (pod["spec"] ?? .object([:])).objectValue
        spec["restartPolicy"] = .string("Never")
        if case .array(var containers) = spec["containers"] ?? .null {
            var container = containers[workerContainer].objectValue
            container["args"] = .array(arguments.map(JSONValue.string))
            containers[workerContainer] = .object(container)
            spec["containers"] = .array(containers)
        }
        pod["apiVersion"] = .string("v1")
        pod["kind"] = .string("Pod")
        pod["metadata"] = .object(metadata)
        pod["spec"] = .object(spec)
        pod["status"] = nil
        return .object(pod)
    }

    /// `spec.terminationGracePeriodSeconds`, when the template sets it.
    var gracePeriodSeconds: Int64? {
        if case .int(let seconds) = manifest["spec"]?["terminationGracePeriodSeconds"] ?? .null { return max(0, seconds) }
        return nil
    }

    /// The name of the worker container, for reading its status.
    var workerContainerName: String? {
        if case .array(let containers) = manifest["spec"]?["containers"] ?? .null { return containers[workerContainer]["name"]?.stringValue }
        return nil
    }

    /// A DNS-1123 label piece: lower case, `[a-z0-9-]`, no leading or trailing dash.
    static func dnsPart(_ text: String, limit: Int) -> String {
        let mapped = text.lowercased().map { ($0.isASCII && ($0.isLetter || $0.isNumber)) ? $0 : "-" }
        return String(String(mapped).prefix(limit)).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
    }

    /// A label value: at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends. Job ids and
    /// worker ids already are (`[a-z0-9._-]`, up to 64 characters).
    static func labelValue(_ text: String) -> String {
        let allowed = text.map { ($0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0))) ? $0 : "-" }
        return String(String(allowed).prefix(63)).trimmingCharacters(in: CharacterSet(charactersIn: "._-"))
    }
}

extension JSONValue {
    /// The members when this is an object, else none.
    var objectValue: [String: JSONValue] {
        if case .object(let object) = self { return object }
        return [:]
    }
}
