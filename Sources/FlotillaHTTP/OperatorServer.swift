import FlotillaCore
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The router an operator server's routes are added to.
public typealias OperatorRouter = Router<BasicRequestContext>

/// The HTTP server of a Flotilla process (controller or worker): Hummingbird on the configured
/// address, read-only pages for anyone who can connect, `POST /actions/...` only with the bearer
/// token (`ActionGuard`), bounded request heads and bodies, idle connections closed.
///
/// Run it as a `Service`, or around a piece of work with `serving(_:)`.
public final class OperatorServer: Service {
    public let settings: OperatorSettings
    private let application: Application<RouterResponder<BasicRequestContext>>
    private let events: AsyncStream<Result<String, any Error>>
    private let eventSink: AsyncStream<Result<String, any Error>>.Continuation
    private let listening = ListeningURL()
    private let logger: Logger

    /// `routes` adds the process's own endpoints; `onListening` gets `http://HOST:PORT` once bound.
    public init(settings: OperatorSettings, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in },
                routes: (OperatorRouter) -> Void) {
        self.settings = settings
        self.logger = logger
        let router = OperatorRouter()
        router.add(middleware: BodyLimit(maxBytes: settings.maxBodyBytes))
        routes(router)
        let (events, sink) = AsyncStream.makeStream(of: Result<String, any Error>.self, bufferingPolicy: .bufferingNewest(4))
        self.events = events
        self.eventSink = sink
        var http1 = HTTP1Channel.Configuration(idleTimeout: .milliseconds(settings.idleTimeout.milliseconds))
        http1.httpDecoder = .init(maxHeaderFieldSize: settings.maxHeaderBytes, maxHeaderListSize: settings.maxHeaderBytes, maxHeaderFieldCount: 100)
        let address = settings.address
        application = Application(
            router: router,
            server: .http1(configuration: http1),
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "flotilla"),
            onServerRunning: { [listening] channel in
                let url = address.url(port: channel.localAddress?.port)
                listening.url.withLock { $0 = url }
                logger.info("HTTP server listening", metadata: ["flotilla.address": "\(url)"])
                sink.yield(.success(url))
                onListening(url)
            },
            logger: logger)
    }

    /// `http://HOST:PORT` once listening.
    public var url: String? { listening.url.withLock { $0 } }

    /// `Service`: serves until cancelled or shut down gracefully; a graceful shutdown gives open
    /// requests (a dashboard polling `/status`) `shutdownGrace`, then cancels them.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await self.serve() }
            tasks.addTask {
                // Ends with the group's graceful shutdown, or throws when the service is cancelled.
                try await gracefulShutdown()
                try await Task.sleep(for: self.shutdownGrace)
            }
            try await tasks.next()
            tasks.cancelAll()
        }
    }

    /// How long a graceful shutdown waits for open requests.
    public var shutdownGrace: Duration { .seconds(2) }

    private func serve() async throws {
        do {
            try await application.run()
        } catch {
            let failure = FlotillaError(.invalidConfiguration, "cannot serve HTTP on \(settings.address): \(error); choose another address (port 0 picks a free one)", underlying: error)
            eventSink.yield(.failure(failure))
            throw failure
        }
    }

    /// Starts the server, waits until it listens (or throws why it cannot), runs `body`, then
    /// shuts the server down gracefully (open requests get `shutdownGrace`, then are cancelled)
    /// and returns what `body` returned.
    public func serving<T: Sendable>(shutdownGrace: Duration = .seconds(2), _ body: () async throws -> T) async throws -> T {
        let group = ServiceGroup(configuration: .init(services: [self], logger: logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var ready: Result<String, any Error> = .failure(FlotillaError(.internal, "the HTTP server stopped before it listened"))
            for await event in events {
                ready = event
                break
            }
            if case .failure(let error) = ready {
                tasks.cancelAll()
                throw error
            }
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await body())
            } catch {
                outcome = .failure(error)
            }
            await group.triggerGracefulShutdown()
            tasks.addTask {
                try await Task.sleep(for: shutdownGrace)
                throw CancellationError()
            }
            _ = try? await tasks.next()
            tasks.cancelAll()
            return try outcome.get()
        }
    }
}

/// The address once bound, shared with the server's start callback.
private final class ListeningURL: Sendable {
    let url = Mutex<String?>(nil)
}

extension OperatorServer {
    /// A response with a text body.
    public static func text(_ body: String, status: HTTPResponse.Status = .ok, type: String = "text/plain; charset=utf-8") -> Response {
        Response(status: status, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A response with a JSON body.
    public static func json(_ body: String, status: HTTPResponse.Status = .ok) -> Response {
        text(body, status: status, type: "application/json")
    }
}

/// Refuses a request whose declared body is larger than the limit with 413, before a handler
/// reads any of it; handlers that read a body read at most `maxBytes` (`collectBody(upTo:)`).
struct BodyLimit<Context: RequestContext>: RouterMiddleware {
    let maxBytes: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > maxBytes {
            return OperatorServer.text("request body of \(length) bytes is over the limit of \(maxBytes)\n", status: .contentTooLarge)
        }
        return try await next(request, context)
    }
}

/// Lets an action through only with `Authorization: Bearer <token>`; without a configured token
/// every action is refused (403) with how to enable them.
public struct ActionGuard<Context: RequestContext>: RouterMiddleware {
    public let token: ActionToken?

    public init(token: ActionToken?) {
        self.token = token
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else {
            return OperatorServer.text("""
                actions are disabled: start the process with \(ActionToken.variable) or \(ActionToken.fileVariable) \
                (or --http-token-file FILE) set, then send Authorization: Bearer TOKEN

                """, status: .forbidden)
        }
        guard token.allows(authorization: request.headers[.authorization]) else {
            var response = OperatorServer.text("a valid bearer token is required: Authorization: Bearer TOKEN\n", status: .unauthorized)
            response.headers[.wwwAuthenticate] = "Bearer"
            return response
        }
        return try await next(request, context)
    }
}
