import FlotillaCore
import Foundation

/// Where an operator server listens: `HOST:PORT`, `[IPv6]:PORT` or `:PORT`, loopback by default.
public struct HTTPListenAddress: Sendable, Hashable, CustomStringConvertible {
    /// The environment variable read when no `--http-address` is given.
    public static let variable = "FLOTILLA_HTTP_ADDRESS"
    /// Loopback: nothing off this machine reaches the server unless asked for.
    public static let defaultHost = "127.0.0.1"

    public var host: String
    /// 0 picks a free port.
    public var port: Int

    public init(host: String = Self.defaultHost, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`, `[::1]:PORT`, `:PORT` (loopback) or a bare `PORT` (loopback).
    public init(parsing text: String) throws(FlotillaError) {
        let text = text.trimmingCharacters(in: .whitespaces)
        let host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            port = text[close...].dropFirst().drop { $0 == ":" }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            host = ""
            port = text[...]
        }
        guard let number = Int(port), (0...65535).contains(number) else {
            throw FlotillaError(.invalidConfiguration, "HTTP address '\(text)' must be HOST:PORT with a port 0...65535 (e.g. 127.0.0.1:8080; 0 picks a free port)")
        }
        self.init(host: host.isEmpty ? Self.defaultHost : String(host), port: number)
    }

    /// `flag` (e.g. `--http-address`), else `FLOTILLA_HTTP_ADDRESS`, else nil.
    public static func from(flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(FlotillaError) -> HTTPListenAddress?
    {
        guard let text = flag ?? environment[variable].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        return try HTTPListenAddress(parsing: text)
    }

    /// Whether only this machine can connect.
    public var isLoopback: Bool { host == "localhost" || host.hasPrefix("127.") || host == "::1" }

    /// `http://HOST:PORT`, brackets around an IPv6 host.
    public func url(port actual: Int? = nil) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "http://\(shown):\(actual ?? port)"
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
