import FlotillaCore
import Foundation
import Logging
import Synchronization

/// Workers as Kubernetes pods, made from a pod template, in one namespace.
///
/// Each worker id gets a pod named `flotilla-<job>-<worker>-<suffix>`, the suffix unique to this
/// controller and counting up, so a replacement never waits for its predecessor's name (the old
/// process is fenced by its transactional id, which the replacement reuses). The pod listing is
/// refreshed in the background (`list` never waits for the API server); exits are read from the
/// worker container's status. Worker pods of the job that run when the controller starts (it was
/// restarted) are adopted by `start` instead of started twice; those no slot claims within
/// `adoptionWindow` are deleted.
public final class KubernetesPodBackend: PodBackend {
    public let job: String
    public var namespace: String { api.namespace }
    let api: KubernetesAPI
    private let template: PodTemplate
    private let baseArguments: [String]
    private let logger: Logger
    private let suffix = String(UInt32.random(in: 0..<1_679_616), radix: 36)  // four base-36 characters at most
    private let state = Mutex(State())

    /// How stale the pod listing may get before `list` asks for a new one.
    static let refreshInterval: Duration = .seconds(2)
    static let adoptionWindow: Duration = .seconds(30)
    /// What a query value may hold unescaped (RFC 3986 unreserved).
    private static let unreserved = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")

    private struct Tracked {
        var pod: WorkerPod
        var name: String
        /// Found running at start-up; `claimed` once a slot's `start` took it over.
        var adopted = false
        var claimed = false
        var lastReason: String?
    }

    private struct State {
        var tracked: [String: Tracked] = [:]
        var counter = 0
        var refreshing = false
        var refreshedAt: ContinuousClock.Instant?
        var lastRefreshError: String?
        var closed = false
        let connectedAt = ContinuousClock.now
    }

    private init(job: String, api: KubernetesAPI, template: PodTemplate, baseArguments: [String], logger: Logger) {
        self.job = job
        self.api = api
        self.template = template
        self.baseArguments = baseArguments
        self.logger = logger
    }

    /// Connects and lists the job's pods once, so wrong credentials, a missing namespace or a
    /// denied `list` fail the controller's start with a clear message. `baseArguments` come
    /// before `--worker-id` in each pod's `args` (`["worker", JOB, "--brokers", B, ...]`).
    public static func connect(job: String, baseArguments: [String], template: PodTemplate, credentials: KubernetesCredentials,
                               namespace: String?, logger: Logger) async throws(FlotillaError) -> KubernetesPodBackend {
        let api = try KubernetesAPI(credentials: credentials, namespace: namespace ?? credentials.namespace ?? "default")
        let backend = KubernetesPodBackend(job: job, api: api, template: template, baseArguments: baseArguments, logger: logger)
        do {
            try await backend.refresh(adopting: true)
        } catch {
            await api.shutdown()
            throw error
        }
        logger.info("kubernetes backend ready", metadata: ["flotilla.server": "\(api.server)", "flotilla.namespace": "\(api.namespace)",
                                                          "flotilla.adopted": "\(backend.state.withLock { $0.tracked.count })"])
        return backend
    }

    public func start(worker id: String) async throws(FlotillaError) -> WorkerPod {
        let adopted = state.withLock { state -> WorkerPod? in
            guard let tracked = state.tracked[id], !tracked.pod.exited else { return nil }
            state.tracked[id]!.claimed = true
            return tracked.pod
        }
        if let adopted {
            logger.info("worker pod already runs; adopted", metadata: [LoggingKeys.worker: "\(id)"])
            return adopted
        }
        let name = state.withLock { state in
            state.counter += 1
            return "flotilla-\(PodTemplate.dnsPart(job, limit: 30))-\(PodTemplate.dnsPart(id, limit: 16))-\(suffix)\(state.counter)"
        }
        let pod = template.pod(name: name, namespace: api.namespace, job: job, worker: id, arguments: baseArguments + ["--worker-id", id])
        let response = try await api.call(.POST, "pods", body: pod, verb: "create", accepting: [409])
        if response.status == 409 {
            // A retried create whose first attempt landed: the pod is there and it is ours.
            let existing = try await api.call(.GET, "pods/\(name)", verb: "get")
            guard existing.body["metadata"]?["labels"]?[PodTemplate.workerLabel]?.stringValue == PodTemplate.labelValue(id) else {
                throw FlotillaError(.internal, "a pod named \(name) exists and is not worker \(id)'s")
            }
        }
        let started = WorkerPod(id: id, startedAt: Timestamp.now())
        state.withLock { $0.tracked[id] = Tracked(pod: started, name: name, claimed: true) }
        logger.info("started worker pod", metadata: [LoggingKeys.worker: "\(id)", "flotilla.pod": "\(name)"])
        return started
    }

    public func stop(worker id: String, grace: Duration) async {
        guard let name = state.withLock({ state -> String? in
            guard let tracked = state.tracked[id], !tracked.pod.exited else { return nil }
            state.tracked[id]!.pod.stopRequested = true
            return tracked.name
        }) else { return }
        // The template's terminationGracePeriodSeconds is the operator's word on how long a
        // worker may take to drain; the controller's grace applies only where it says nothing.
        let seconds = template.gracePeriodSeconds ?? max(0, grace.components.seconds)
        let grace = Duration.seconds(seconds)
        _ = try? await api.call(.DELETE, "pods/\(name)?gracePeriodSeconds=\(seconds)", verb: "delete", accepting: [404])
        // The kubelet sends SIGTERM, then SIGKILL after the grace period; wait for the pod to go.
        let deadline = ContinuousClock.now + grace + .seconds(15)
        while ContinuousClock.now < deadline {
            if let answer = try? await api.call(.GET, "pods/\(name)", verb: "get", accepting: [404], retryFor: .seconds(2)) {
                let observed = ObservedPod(answer.body, container: template.workerContainerName)
                if answer.status == 404 || observed?.ended == true {
                    markExited(id, name: name, observed: observed)
                    return
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
        logger.warning("worker pod still terminating after its grace period; deleting it at once", metadata: ["flotilla.pod": "\(name)"])
        _ = try? await api.call(.DELETE, "pods/\(name)?gracePeriodSeconds=0", verb: "delete", accepting: [404])
        markExited(id, name: name, observed: nil)
    }

    public func list() async -> [WorkerPod] {
        let due = state.withLock { state -> Bool in
            guard !state.closed, !state.refreshing, state.refreshedAt.map({ ContinuousClock.now - $0 >= Self.refreshInterval }) ?? true else { return false }
            state.refreshing = true
            return true
        }
        if due { Task { await self.refreshInBackground() } }
        return state.withLock { $0.tracked.values.map(\.pod).sorted { $0.id < $1.id } }
    }

    public func replace(worker id: String) async throws(FlotillaError) -> WorkerPod {
        let old = state.withLock { $0.tracked.removeValue(forKey: id)?.name }
        if let old {
            _ = try? await api.call(.DELETE, "pods/\(old)?gracePeriodSeconds=0", verb: "delete", accepting: [404])
        }
        return try await start(worker: id)
    }

    public func forget(worker id: String) async {
        let name = state.withLock { state -> String? in
            guard let tracked = state.tracked[id], tracked.pod.exited else { return nil }
            state.tracked[id] = nil
            return tracked.name
        }
        // An ended pod object stays until deleted: remove it so a restarting job leaves no pile.
        if let name { _ = try? await api.call(.DELETE, "pods/\(name)", verb: "delete", accepting: [404], retryFor: .seconds(5)) }
    }

    public func close() async {
        state.withLock { $0.closed = true }
        await api.shutdown()
    }

    // MARK: - Listing

    private func refreshInBackground() async {
        var problem: String?
        do { try await refresh(adopting: false) } catch { problem = error.message }
        let report = state.withLock { state -> Bool in
            state.refreshing = false
            state.refreshedAt = ContinuousClock.now
            defer { state.lastRefreshError = problem }
            return problem != nil && problem != state.lastRefreshError
        }
        if report, let problem { logger.warning("cannot list worker pods; keeping the last view", metadata: ["flotilla.error": "\(problem)"]) }
    }

    /// Lists the job's pods and updates what is tracked: exits and their reasons, pods deleted by
    /// someone else (evicted, `kubectl delete`), and with `adopting` the pods already running.
    private func refresh(adopting: Bool) async throws(FlotillaError) {
        let askedAt = Timestamp.now()
        let selector = "\(PodTemplate.jobLabel)=\(PodTemplate.labelValue(job))".addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? ""
        let response = try await api.call(.GET, "pods?labelSelector=\(selector)", verb: "list", retryFor: .seconds(5))
        guard case .array(let items) = response.body["items"] ?? .null else {
            throw FlotillaError(.internal, "the Kubernetes API's pod list has no items: \(response.body)")
        }
        let observed = items.compactMap { ObservedPod($0, container: template.workerContainerName) }
        let byName = Dictionary(observed.map { ($0.name, $0) }, uniquingKeysWith: { $1 })
        var changes: [(String, String)] = [], unclaimed: [String] = []
        state.withLock { state in
            for (id, tracked) in state.tracked where !tracked.pod.exited {
                if let pod = byName[tracked.name] {
                    if pod.ended { state.tracked[id]!.pod.exited = true; state.tracked[id]!.pod.exitStatus = pod.exitCode }
                    if pod.reason != tracked.lastReason {
                        state.tracked[id]!.lastReason = pod.reason
                        state.tracked[id]!.pod.exitReason = pod.reason.map { "pod \(tracked.name): \($0)" }
                        if let reason = pod.reason { changes.append((tracked.name, reason)) }
                    }
                } else if tracked.pod.startedAt < askedAt - 1_000 {
                    // Made well before this listing was asked for, yet not in it: deleted.
                    state.tracked[id]!.pod.exited = true
                    state.tracked[id]!.pod.exitReason = "pod \(tracked.name) was deleted"
                }
            }
            if adopting {
                for pod in observed.sorted(by: { $0.createdAt < $1.createdAt }) where pod.live {
                    state.tracked[pod.worker] = Tracked(pod: WorkerPod(id: pod.worker, startedAt: pod.createdAt), name: pod.name, adopted: true)
                }
            } else if ContinuousClock.now - state.connectedAt > Self.adoptionWindow {
                for (id, tracked) in state.tracked where tracked.adopted && !tracked.claimed && !tracked.pod.exited {
                    unclaimed.append(tracked.name)
                    state.tracked[id] = nil
                }
            }
        }
        for (name, reason) in changes { logger.info("worker pod status", metadata: ["flotilla.pod": "\(name)", "flotilla.reason": "\(reason)"]) }
        for name in unclaimed {
            logger.warning("deleting a worker pod left by an earlier controller that no slot took over", metadata: ["flotilla.pod": "\(name)"])
            _ = try? await api.call(.DELETE, "pods/\(name)", verb: "delete", accepting: [404], retryFor: .seconds(5))
        }
    }

    private func markExited(_ id: String, name: String, observed: ObservedPod?) {
        state.withLock { state in
            guard state.tracked[id]?.name == name else { return }
            state.tracked[id]!.pod.exited = true
            state.tracked[id]!.pod.exitStatus = observed?.exitCode
            state.tracked[id]!.pod.exitReason = observed?.reason.map { "pod \(name): \($0)" }
        }
    }
}
