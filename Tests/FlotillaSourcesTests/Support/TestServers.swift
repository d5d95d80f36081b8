import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Ports and sockets on 127.0.0.1 for the HTTP tests.
enum LocalPort {
    /// A port that was free a moment ago (the kernel's pick for port 0).
    static func free() throws -> Int {
        let socket = try Self.bound()
        defer { close(socket.descriptor) }
        return socket.port
    }

    /// A socket bound to 127.0.0.1 on a kernel-chosen port, not yet listening.
    static func bound() throws -> (descriptor: Int32, port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestServerError("socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw TestServerError("bind() failed: errno \(errno)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
    }

    /// True once something accepts connections on `port`.
    static func isOpen(_ port: Int) -> Bool {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

struct TestServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A child process serving HTTP on 127.0.0.1, stopped by `stop()`.
final class TestServer: @unchecked Sendable {
    // @unchecked: `process` is set in init and only read afterwards.
    let port: Int
    let root: String
    private let process: Process
    /// The first signal `stop()` sends.
    private let stopSignal: Int32

    var baseURL: String { "http://127.0.0.1:\(port)" }

    private init(port: Int, root: String, process: Process, stopSignal: Int32) {
        self.port = port
        self.root = root
        self.process = process
        self.stopSignal = stopSignal
    }

    /// nginx serving `dir/www`, with Range support, `/forbidden/` answering 403 and `/broken`
    /// answering 500. Config, logs, pid file and temp files all live in `dir`.
    static func nginx(dir: String) throws -> TestServer {
        let port = try LocalPort.free()
        let www = dir + "/www"
        try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
        for temp in ["client", "proxy", "fastcgi", "uwsgi", "scgi"] {
            try FileManager.default.createDirectory(atPath: dir + "/tmp/" + temp, withIntermediateDirectories: true)
        }
        // Tests run as root: without `user root` the workers run as nobody and cannot read the
        // private temp directory, so every request would be 403.
        let user = geteuid() == 0 ? "user root;" : ""
        let config = """
        \(user)
        worker_processes 1;
        pid \(dir)/nginx.pid;
        error_log \(dir)/error.log warn;
        events { worker_connections 64; }
        http {
            access_log \(dir)/access.log;
            client_body_temp_path \(dir)/tmp/client;
            proxy_temp_path \(dir)/tmp/proxy;
            fastcgi_temp_path \(dir)/tmp/fastcgi;
            uwsgi_temp_path \(dir)/tmp/uwsgi;
            scgi_temp_path \(dir)/tmp/scgi;
            default_type application/octet-stream;
            server {
                listen 127.0.0.1:\(port);
                root \(www);
                location /forbidden/ { deny all; }
                location /broken { return 500; }
            }
        }
        """
        try config.write(toFile: dir + "/nginx.conf", atomically: true, encoding: .utf8)
        return try start(
            port: port, root: www, executable: "/usr/sbin/nginx",
            arguments: ["-p", dir, "-c", dir + "/nginx.conf", "-g", "daemon off;"], logDir: dir,
            stopSignal: SIGTERM
        )
    }

    /// `python3 -m http.server` serving `dir`: answers every GET with 200 and the whole body,
    /// ignoring Range, and sends no Accept-Ranges.
    static func pythonHTTPServer(dir: String) throws -> TestServer {
        let port = try LocalPort.free()
        return try start(
            port: port, root: dir, executable: "/usr/bin/env",
            arguments: ["python3", "-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dir],
            logDir: nil, stopSignal: SIGKILL
        )
    }

    private static func start(
        port: Int, root: String, executable: String, arguments: [String], logDir: String?, stopSignal: Int32
    ) throws -> TestServer {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let server = TestServer(port: port, root: root, process: process, stopSignal: stopSignal)
        let deadline = Date().addingTimeInterval(10)
        while !LocalPort.isOpen(port) {
            guard process.isRunning, Date() < deadline else {
                server.stop()
                let log = logDir.flatMap { try? String(contentsOfFile: $0 + "/error.log", encoding: .utf8) } ?? ""
                throw TestServerError("\(executable) \(arguments.joined(separator: " ")) did not start on port \(port): \(log)")
            }
            usleep(20_000)
        }
        return server
    }

    /// Puts a file in the served root; returns its URL.
    @discardableResult
    func serve(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = root + "/" + name
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true
        )
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return baseURL + "/" + name
    }

    /// `stopSignal`, then SIGKILL if still running after 3 s. Children spawned from Dispatch threads
    /// inherit a mask that blocks SIGTERM, so python's http.server gets SIGKILL; nginx resets its
    /// mask and shuts down cleanly on SIGTERM. Polls `isRunning` because `waitUntilExit()` spins a run loop
    /// on non-main threads.
    func stop() {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, stopSignal)
        let deadline = Date().addingTimeInterval(3)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            while process.isRunning { usleep(10_000) }
        }
    }
}
