import FlotillaCore
import FlotillaHTTP
import FlotillaKafka
import Foundation
import Hummingbird
import NIOCore
import ServiceLifecycle
import Synchronization

/// The controller's operator surface: `/status`, `/metrics`, `/healthz` for anyone who can
/// connect, and the actions `POST /actions/scale?workers=N`, `/actions/autoscale`, `/actions/drain?worker=ID`,
/// `/actions/close` and `/actions/cancel` with the
/// bearer token. An action publishes the same control record as `flotilla scale` / `flotilla
/// cancel` on the job's control topic; this controller applies it when it reads it back, like any
/// other, so a restarted controller replays it too.
extension ControllerService {
    func operatorServer(_ settings: OperatorSettings, onListening: @escaping @Sendable (String) -> Void) -> OperatorServer {
        let board = board, registry = registry
        return OperatorServer(settings: settings, logger: logger, onListening: onListening) { router in
            router.get("/status") { _, _ in OperatorServer.json(board.status.json) }
            router.get("/metrics") { _, _ in
                OperatorServer.text(registry.emitToString(), type: "text/plain; version=0.0.4; charset=utf-8")
            }
            router.get("/healthz") { _, _ in OperatorServer.text("ok \(board.status.state)\n") }
            router.get("/") { _, _ in
                var page = OperatorServer.text(DashboardPage.html, type: "text/html; charset=utf-8")
                // Self-contained: the page may load nothing from anywhere, and talk only to this server.
                page.headers[.contentSecurityPolicy] = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'"
                return page
            }
            router.get("/events") { _, _ in Self.events(board) }
            let actions = router.group("/actions").add(middleware: ActionGuard(token: settings.token))
            /// An action route: the (bounded) body is read first, then `handle` gets the query.
            func action(_ path: String, _ handle: @escaping @Sendable (_ query: [String: String]) async -> Response) {
                actions.post(RouterPath(path)) { request, _ in
                    var request = request
                    _ = try await request.collectBody(upTo: settings.maxBodyBytes)
                    var query: [String: String] = [:]
                    // The first value of a repeated key, as the parameters subscript gives it.
                    for (key, value) in request.uri.queryParameters where query[String(key)] == nil { query[String(key)] = String(value) }
                    return await handle(query)
                }
            }
            action("/scale") { await self.scaleAction(workers: $0["workers"]) }
            action("/autoscale") { _ in
                let record = ControlRecord(job: self.options.job, target: ControlRecord.controller, command: .scale, reason: "autoscale over HTTP")
                return await self.publish(record, action: "autoscale", answer: [:])
            }
            action("/drain") { await self.drainAction(worker: $0["worker"]) }
            action("/close") { _ in await self.closeAction() }
            action("/cancel") { await self.cancelAction(reason: $0["reason"].map { $0.removingPercentEncoding ?? $0 }) }
        }
    }

    /// `GET /events`: server-sent events, the status JSON once a second. A stream ends after five
    /// minutes (browsers reconnect by themselves) or when the server stops.
    static func events(_ board: StatusBoard) -> Response {
        let body = ResponseBody { writer in
            let end = ContinuousClock.now + .seconds(300)
            try await writer.write(ByteBuffer(string: "retry: 1000\n\n"))
            while !Task.isCancelled, !Task.isShuttingDownGracefully, ContinuousClock.now < end {
                try await writer.write(ByteBuffer(string: "data: \(board.status.compactJSON)\n\n"))
                try await Task.sleep(for: .seconds(1))
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }

    /// `POST /actions/scale?workers=N`: the `scale` control record for the controller.
    func scaleAction(workers text: String?) async -> Response {
        guard let text, let workers = Int(text), workers >= 0 else {
            metrics.countAction("scale", result: "invalid")
            return OperatorServer.text("give the wanted number of workers: POST /actions/scale?workers=N (N >= 0)\n", status: .badRequest)
        }
        let record = ControlRecord(job: options.job, target: ControlRecord.controller, command: .scale, workers: workers,
                                   reason: "scaled over HTTP")
        return await publish(record, action: "scale", answer: ["workers": workers])
    }

    /// `POST /actions/cancel[?reason=TEXT]`: the `cancel` control record for every worker; the
    /// controller then writes the cancelled manifest and stops the fleet.
    func cancelAction(reason: String?) async -> Response {
        let state = board.status.state
        guard !["done", "cancelled", "failed"].contains(state) else {
            metrics.countAction("cancel", result: "refused")
            return OperatorServer.text("job '\(options.job)' is \(state); nothing to cancel\n", status: .conflict)
        }
        let record = ControlRecord(job: options.job, target: ControlRecord.allWorkers, command: .cancel,
                                   reason: reason.flatMap { $0.isEmpty ? nil : $0 } ?? "cancelled over HTTP")
        return await publish(record, action: "cancel", answer: [:])
    }

    /// `POST /actions/drain?worker=wN`: that worker finishes and publishes what it holds, then
    /// exits; the controller starts a fresh process in its slot (a graceful replacement).
    func drainAction(worker: String?) async -> Response {
        guard let worker, board.status.workers.contains(where: { $0.id == worker && !$0.lost }) else {
            metrics.countAction("drain", result: "invalid")
            let live = board.status.workers.filter { !$0.lost }.map(\.id).joined(separator: ", ")
            return OperatorServer.text("name a live worker: POST /actions/drain?worker=ID (live: \(live.isEmpty ? "none" : live))\n", status: .badRequest)
        }
        let record = ControlRecord(job: options.job, target: worker, command: .drain, reason: "drained over HTTP")
        return await publish(record, action: "drain", answer: [:])
    }

    /// `POST /actions/close`: the `close` control record of an open job (`mode: open`).
    func closeAction() async -> Response {
        guard board.status.open else {
            metrics.countAction("close", result: "refused")
            return OperatorServer.text("job '\(options.job)' is not open (mode: open); it ends by itself when its shards are done\n", status: .conflict)
        }
        let record = ControlRecord(job: options.job, target: ControlRecord.controller, command: .close, reason: "closed over HTTP")
        return await publish(record, action: "close", answer: [:])
    }

    private func publish(_ record: ControlRecord, action: String, answer: [String: Int]) async -> Response {
        guard let publisher = controlPublisher else {
            metrics.countAction(action, result: "unavailable")
            return OperatorServer.text("the controller is not connected to Kafka yet; try again in a moment\n", status: .serviceUnavailable)
        }
        let topic = TopicNames(prefix: options.topicPrefix, job: options.job).control
        // A request waits for the broker's acknowledgement at most `requestTimeout` (librdkafka
        // would keep trying for minutes). The send cannot be cancelled, so it runs in its own task,
        // which ends with the delivery; the record may still be delivered after a 504.
        let timeout = options.http?.requestTimeout ?? .seconds(10)
        let delivered = await FirstOf<Result<Bool, any Error>>.race(
            { do { try await publisher.send(OutgoingRecord(record, topic: topic, key: record.target)); return .success(true) } catch { return .failure(error) } },
            { try? await Task.sleep(for: timeout); return .success(false) })
        if case .success(false) = delivered {
            metrics.countAction(action, result: "timeout")
            return OperatorServer.text("the broker did not acknowledge the \(action) command within \(timeout); it may still be delivered, check /status\n",
                                       status: .gatewayTimeout)
        }
        do {
            _ = try delivered.get()
        } catch {
            metrics.countAction(action, result: "failed")
            logger.error("cannot publish an HTTP action", metadata: ["flotilla.action": "\(action)", "flotilla.error": "\(error)"])
            return OperatorServer.text("cannot publish the \(action) command to \(topic): \(error)\n", status: .badGateway)
        }
        metrics.countAction(action, result: "published")
        logger.notice("HTTP action published", metadata: ["flotilla.action": "\(action)", "flotilla.topic": "\(topic)"])
        var fields: [String: Any] = ["action": action, "job": options.job, "topic": topic, "target": record.target]
        for (key, value) in answer { fields[key] = value }
        let body = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])) ?? Data("{}".utf8)
        return OperatorServer.json(String(decoding: body, as: UTF8.self) + "\n", status: .accepted)
    }
}

/// The first of two results; the other goes on to its end in its own task.
private final class FirstOf<Value: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<Value, Never>?>(nil)

    static func race(_ first: @escaping @Sendable () async -> Value, _ second: @escaping @Sendable () async -> Value) async -> Value {
        let race = FirstOf()
        return await withCheckedContinuation { continuation in
            race.continuation.withLock { $0 = continuation }
            Task { race.resume(await first()) }
            Task { race.resume(await second()) }
        }
    }

    private func resume(_ value: Value) {
        continuation.withLock { $0.take() }?.resume(returning: value)
    }
}
