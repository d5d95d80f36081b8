#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import FlotillaCore
import Foundation
import Logging

/// A response of `StatusServer`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int, contentType: String = "text/plain; charset=utf-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = Array(body.utf8)
    }
}

/// A small HTTP/1.1 server on 127.0.0.1: GET only, one request per connection (`Connection:
/// close`), served by one accept thread. Enough for `/status`, `/metrics` and `/healthz`, with no
/// dependency (a full server framework would cost minutes of build for three read-only pages).
public final class StatusServer: Sendable {
    /// The port it listens on (the ephemeral one chosen when 0 was asked).
    public let port: Int
    /// `http://127.0.0.1:<port>`.
    public var address: String { "http://127.0.0.1:\(port)" }
    private let socket: Int32
    private let handler: @Sendable (String) -> HTTPResponse
    private let done = DispatchSemaphore(value: 0)

    /// Listens on 127.0.0.1:`port` (0: any free port) and serves `handler(path)` for each GET.
    public init(port: Int, logger: Logger, handler: @escaping @Sendable (String) -> HTTPResponse) throws(FlotillaError) {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FlotillaError(.internal, "cannot create a socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw FlotillaError(.invalidConfiguration, "cannot listen on 127.0.0.1:\(port): \(reason); choose another --http-port (0 picks a free one)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.socket = fd
        self.handler = handler
        let thread = Thread { [fd, handler, done] in
            Self.acceptLoop(fd, handler: handler, logger: logger)
            done.signal()
        }
        thread.name = "flotilla-http"
        thread.start()
    }

    /// Stops accepting and waits for the accept thread to end.
    public func stop() {
        // shutdown wakes the thread blocked in accept(); close alone would not on Linux.
        shutdown(socket, Int32(SHUT_RDWR))
        done.wait()
        close(socket)
    }

    private static func acceptLoop(_ fd: Int32, handler: @Sendable (String) -> HTTPResponse, logger: Logger) {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return  // shut down
            }
            // Workers are spawned with closefrom(3); this keeps the socket out of other children too.
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            serve(client, handler: handler, logger: logger)
            close(client)
        }
    }

    private static func serve(_ client: Int32, handler: (String) -> HTTPResponse, logger: Logger) {
        // A slow or silent client must not block the only thread for long.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4_096)
        while request.count < 16_384 {
            let count = read(client, &buffer, buffer.count)
            if count <= 0 { break }
            request += buffer[0..<count]
            if request.count >= 4, request.suffix(from: max(0, request.count - count - 3)).containsHeaderEnd { break }
        }
        let head = String(decoding: request, as: UTF8.self)
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        let response: HTTPResponse
        if parts.count < 2 {
            response = HTTPResponse(status: 400, body: "bad request\n")
        } else if parts[0] != "GET" && parts[0] != "HEAD" {
            response = HTTPResponse(status: 405, body: "only GET is served\n")
        } else {
            let target = String(parts[1])
            let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
            response = handler(path)
        }
        var bytes = Array(("HTTP/1.1 \(response.status) \(reasonPhrase(response.status))\r\n"
            + "Content-Type: \(response.contentType)\r\n"
            + "Content-Length: \(response.body.count)\r\n"
            + "Connection: close\r\n\r\n").utf8)
        if parts.first != "HEAD" { bytes += response.body }
        var sent = 0
        while sent < bytes.count {
            let count = bytes[sent...].withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
            if count <= 0 { break }
            sent += count
        }
    }

    private static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 503: "Service Unavailable"
        default: "Status"
        }
    }
}

extension ArraySlice where Element == UInt8 {
    /// Whether the bytes contain CRLF CRLF (the end of an HTTP request head).
    var containsHeaderEnd: Bool {
        let end: [UInt8] = [13, 10, 13, 10]
        guard count >= 4 else { return false }
        var index = startIndex
        while index + 4 <= endIndex {
            if self[index..<index + 4].elementsEqual(end) { return true }
            index += 1
        }
        return false
    }
}
