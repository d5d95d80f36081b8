import EmbeddedBroker
import FlotillaCore
import Foundation

/// Headless Chromium driven through chromedriver's W3C WebDriver HTTP API (async-http-client).
final class WebDriver: @unchecked Sendable {
    // `Process` is not Sendable; it is only touched in `init` and in `quit()`, called once.
    private let process: Process
    let url: String
    private(set) var session = ""

    init() async throws {
        let port = try FreePort.find()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["chromedriver", "--port=\(port)", "--allowed-ips=127.0.0.1"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        url = "http://127.0.0.1:\(port)"
        let deadline = ContinuousClock.now + .seconds(10)
        while !FreePort.accepts(port: port) {
            guard ContinuousClock.now < deadline else { throw FlotillaError(.internal, "chromedriver did not start") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let options: [String: Any] = [
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"],
        ]
        let created = try await command("POST", "/session", ["capabilities": ["alwaysMatch": ["browserName": "chrome", "goog:chromeOptions": options]]])
        guard let value = created["value"] as? [String: Any], let id = value["sessionId"] as? String else {
            throw FlotillaError(.internal, "chromedriver made no session: \(created)")
        }
        session = id
    }

    /// One WebDriver command; returns the decoded JSON answer.
    @discardableResult
    func command(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> [String: Any] {
        let data = try body.map { try JSONSerialization.data(withJSONObject: $0) }
        let reply = try await HTTPTestClient.request("\(url)\(path)", method: .init(rawValue: method),
                                                     headers: data == nil ? [] : [("Content-Type", "application/json")],
                                                     body: data.map { [UInt8]($0) }, timeout: .seconds(30))
        return (try JSONSerialization.jsonObject(with: Data(reply.body.utf8))) as? [String: Any] ?? [:]
    }

    func open(_ page: String) async throws {
        try await command("POST", "/session/\(session)/url", ["url": page])
    }

    /// Runs `script` in the page and returns its result.
    func run(_ script: String) async throws -> Any? {
        try await command("POST", "/session/\(session)/execute/sync", ["script": script, "args": []])["value"]
    }

    /// The page as PNG.
    func screenshot() async throws -> Data {
        guard let text = try await command("GET", "/session/\(session)/screenshot")["value"] as? String,
              let png = Data(base64Encoded: text) else { throw FlotillaError(.internal, "no screenshot") }
        return png
    }

    func quit() async {
        _ = try? await command("DELETE", "/session/\(session)")
        // chromedriver ignores SIGTERM: it stops on its /shutdown command (SIGKILL as the last resort).
        _ = try? await command("GET", "/shutdown")
        let deadline = ContinuousClock.now + .seconds(5)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
