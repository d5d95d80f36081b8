import FlotillaCore
import Foundation

/// What the backend reads from one Pod object of a listing: whose it is, and whether and how its
/// worker container ended.
struct ObservedPod: Sendable, Hashable {
    var name: String
    var worker: String
    /// `metadata.creationTimestamp`, epoch ms.
    var createdAt: Int64
    /// `status.phase`: Pending, Running, Succeeded, Failed, Unknown.
    var phase: String
    /// Deletion has been asked for (`metadata.deletionTimestamp`).
    var deleting: Bool
    /// The worker container's exit code, once it terminated (137 for SIGKILL, as a shell says).
    var exitCode: Int32?
    /// Why it terminated or why it cannot start: "OOMKilled", "ImagePullBackOff: Back-off pulling image ...".
    var reason: String?
    /// The container waits for something that does not pass by itself.
    var stuck: Bool

    /// Waiting reasons that need a person (a wrong image, a missing Secret): the pod is treated
    /// as exited, so the fleet's restart backoff and error report take over.
    static let stuckReasons: Set<String> = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                            "CreateContainerConfigError", "CreateContainerError", "RunContainerError"]

    /// Nil for an object that is not a worker pod of the listing (no name or worker label).
    init?(_ pod: JSONValue, container: String?) {
        guard let name = pod["metadata"]?["name"]?.stringValue,
              let worker = pod["metadata"]?["labels"]?[PodTemplate.workerLabel]?.stringValue else { return nil }
        self.name = name
        self.worker = worker
        createdAt = pod["metadata"]?["creationTimestamp"]?.stringValue.flatMap(Self.epochMs) ?? 0
        phase = pod["status"]?["phase"]?.stringValue ?? "Pending"
        deleting = pod["metadata"]?["deletionTimestamp"].map { $0 != .null } ?? false
        var statuses: [JSONValue] = []
        if case .array(let list) = pod["status"]?["containerStatuses"] ?? .null { statuses = list }
        let status = statuses.first { $0["name"]?.stringValue == container } ?? statuses.first
        let state = status?["state"]
        if let terminated = state?["terminated"] {
            if case .int(let code) = terminated["exitCode"] ?? .null { exitCode = Int32(truncatingIfNeeded: code) }
            reason = Self.describe(terminated)
        }
        stuck = false
        if let waiting = state?["waiting"], let why = waiting["reason"]?.stringValue {
            stuck = Self.stuckReasons.contains(why)
            reason = Self.describe(waiting)
        } else if phase == "Failed", reason == nil {
            reason = Self.describe(pod["status"] ?? .null)  // evicted: the reason is on the pod
        }
    }

    /// The pod no longer runs a worker: its phase is final, or it cannot start.
    var ended: Bool { phase == "Succeeded" || phase == "Failed" || stuck }

    /// Still running or about to, and not on its way out.
    var live: Bool { !ended && !deleting }

    /// "Reason: message", either part alone, or nil.
    private static func describe(_ object: JSONValue) -> String? {
        let parts = [object["reason"]?.stringValue, object["message"]?.stringValue].compactMap { $0?.isEmpty == false ? $0 : nil }
        return parts.isEmpty ? nil : parts.joined(separator: ": ")
    }

    /// RFC 3339 ("2026-12-02T19:04:05Z") to epoch ms.
    static func epochMs(_ text: String) -> Int64? {
        let formatter = ISO8601DateFormatter()
        guard let date = formatter.date(from: text) else { return nil }
        return Int64(date.timeIntervalSince1970 * 1_000)
    }
}
