import FlotillaCore
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Synchronization

/// Timeouts for HTTP(S) sources. Every request is bounded by both.
public struct HTTPOptions: Sendable, Hashable {
    /// Seconds to wait for a connection, a response, or the next bytes of a body.
    public var idleTimeout: Double
    /// Seconds a whole request may take, body included (a full scan of a large file when sharding).
    public var totalTimeout: Double

    public init(idleTimeout: Double = 30, totalTimeout: Double = 3600) {
        self.idleTimeout = idleTimeout
        self.totalTimeout = totalTimeout
    }
}

/// The head of an HTTP response, as the source code needs it.
struct HTTPHead: Sendable {
    var status: Int
    var contentLength: Int64?
    var acceptsRanges: Bool
    var contentRange: String?
}

/// URLSession (FoundationNetworking) wrapped for streaming reads with bounded timeouts and
/// errors that name the method, the URL and the status: "GET http://host/x.jsonl: HTTP 404 Not Found".
struct HTTPClient: Sendable {
    let options: HTTPOptions

    /// Sends a HEAD request and returns the response head whatever its status.
    func head(_ url: String) async throws(FlotillaError) -> HTTPHead {
        var head: HTTPHead?
        try await send(method: "HEAD", url: url, range: nil, onResponse: { response throws(FlotillaError) in
            head = response
        }, onData: { _ throws(FlotillaError) in false })
        guard let head else { throw FlotillaError(.invalidInput, "HEAD \(url): no response") }
        return head
    }

    /// Sends a GET (with `Range: bytes=a-b` when `range` is given) and streams the body to `onData`
    /// chunk by chunk as it arrives; `onData` returns false to stop reading early.
    /// `onResponse` sees the head first and may throw to refuse it. A non-2xx status is an error.
    func get(
        _ url: String, range: ClosedRange<Int64>?,
        onResponse: @escaping (HTTPHead) throws(FlotillaError) -> Void,
        onData: @escaping (UnsafeRawBufferPointer) throws(FlotillaError) -> Bool
    ) async throws(FlotillaError) {
        try await send(method: "GET", url: url, range: range, onResponse: onResponse, onData: onData)
    }

    private func send(
        method: String, url: String, range: ClosedRange<Int64>?,
        onResponse: @escaping (HTTPHead) throws(FlotillaError) -> Void,
        onData: @escaping (UnsafeRawBufferPointer) throws(FlotillaError) -> Bool
    ) async throws(FlotillaError) {
        guard let target = URL(string: url), let scheme = target.scheme?.lowercased(),
              scheme == "http" || scheme == "https", target.host != nil else {
            throw FlotillaError(.invalidInput, "input URL '\(url)' is not an http:// or https:// URL")
        }
        var request = URLRequest(url: target)
        request.httpMethod = method
        request.timeoutInterval = options.idleTimeout
        // Byte offsets must mean the stored bytes: no transparent decompression of gzip bodies.
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        if let range { request.setValue("bytes=\(range.lowerBound)-\(range.upperBound)", forHTTPHeaderField: "Range") }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = options.idleTimeout
        configuration.timeoutIntervalForResource = options.totalTimeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        let label = "\(method) \(url)"
        let delegate = StreamDelegate(label: label, options: options, onResponse: onResponse, onData: onData)
        // A serial delegate queue: callbacks for one request never overlap, so the handlers may mutate.
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }
        let task = session.dataTask(with: request)
        let result: Result<Void, FlotillaError> = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                delegate.start(continuation)
                task.resume()
            }
        } onCancel: {
            task.cancel()
        }
        try result.get()
    }
}

/// Receives one request's callbacks; state under a mutex because URLSession calls in from its queue.
private final class StreamDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // @unchecked: the handlers are only called from the session's serial delegate queue, and the
    // mutable state below is guarded by `state`.
    private struct State {
        var continuation: CheckedContinuation<Result<Void, FlotillaError>, Never>?
        var error: FlotillaError?
        var stopped = false
    }

    private let label: String
    private var isHead: Bool { label.hasPrefix("HEAD ") }
    private let options: HTTPOptions
    private let onResponse: (HTTPHead) throws(FlotillaError) -> Void
    private let onData: (UnsafeRawBufferPointer) throws(FlotillaError) -> Bool
    private let state = Mutex(State())

    init(
        label: String, options: HTTPOptions,
        onResponse: @escaping (HTTPHead) throws(FlotillaError) -> Void,
        onData: @escaping (UnsafeRawBufferPointer) throws(FlotillaError) -> Bool
    ) {
        self.label = label
        self.options = options
        self.onResponse = onResponse
        self.onData = onData
    }

    func start(_ continuation: CheckedContinuation<Result<Void, FlotillaError>, Never>) {
        state.withLock { $0.continuation = continuation }
    }

    private func stop(_ error: FlotillaError?) {
        state.withLock { state in
            state.stopped = true
            if state.error == nil { state.error = error }
        }
    }

    private var isStopped: Bool { state.withLock { $0.stopped } }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        guard let http = response as? HTTPURLResponse else {
            stop(FlotillaError(.invalidInput, "\(label): not an HTTP response"))
            return completionHandler(.cancel)
        }
        let headers = http.allHeaderFields
        func header(_ name: String) -> String? {
            headers.first { ($0.key as? String)?.lowercased() == name }?.value as? String
        }
        let head = HTTPHead(
            status: http.statusCode,
            contentLength: header("content-length").flatMap { Int64($0.trimmingCharacters(in: .whitespaces)) },
            acceptsRanges: header("accept-ranges")?.lowercased().contains("bytes") ?? false,
            contentRange: header("content-range")
        )
        // HEAD answers are judged by the caller (a server may refuse HEAD yet serve GET).
        guard isHead || (200..<300).contains(head.status) || head.status == 416 else {
            stop(FlotillaError(.invalidInput, "\(label): HTTP \(head.status) \(HTTPStatus.reason(head.status))"))
            return completionHandler(.cancel)
        }
        do throws(FlotillaError) {
            try onResponse(head)
            completionHandler(.allow)
        } catch {
            stop(error)
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard !isStopped else { return }
        do throws(FlotillaError) {
            let more = try data.withUnsafeBytes { bytes in
                Result { () throws(FlotillaError) in try onData(bytes) }
            }.get()
            if !more {
                stop(nil)
                dataTask.cancel()
            }
        } catch {
            stop(error)
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        let (continuation, result): (CheckedContinuation<Result<Void, FlotillaError>, Never>?, Result<Void, FlotillaError>) =
            state.withLock { state in
                let continuation = state.continuation
                state.continuation = nil
                if let recorded = state.error { return (continuation, .failure(recorded)) }
                if state.stopped || error == nil { return (continuation, .success(())) }
                return (continuation, .failure(self.describe(error!)))
            }
        continuation?.resume(returning: result)
    }

    private func describe(_ error: any Error) -> FlotillaError {
        guard let urlError = error as? URLError else {
            return FlotillaError(.invalidInput, "\(label): \(error.localizedDescription)")
        }
        let reason: String
        switch urlError.code {
        case .cannotConnectToHost: reason = "connection refused"
        case .timedOut: reason = "timed out (no answer within \(Self.seconds(options.idleTimeout)) s, or over \(Self.seconds(options.totalTimeout)) s in all)"
        case .cannotFindHost, .dnsLookupFailed: reason = "host not found"
        case .networkConnectionLost: reason = "connection lost"
        case .notConnectedToInternet: reason = "no network"
        case .cancelled: reason = "cancelled"
        case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
             .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot:
            reason = "TLS failed (\(urlError.localizedDescription))"
        default: reason = urlError.localizedDescription
        }
        return FlotillaError(.invalidInput, "\(label): \(reason)")
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}

/// Reason phrases for the statuses a user is likely to meet.
enum HTTPStatus {
    static func reason(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 410: "Gone"
        case 416: "Range Not Satisfiable"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: status >= 500 ? "Server Error" : status >= 400 ? "Client Error" : ""
        }
    }
}
