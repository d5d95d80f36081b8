import FlotillaController
import FlotillaCore
import Foundation
import Logging
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("LocalPodBackend with real child processes", .timeLimit(.minutes(1)))
struct LocalPodBackendTests {
    let logger = Logger(label: "test")

    /// A folder with a `worker.sh` playing the worker: it logs its arguments and handles SIGTERM as `mode` says.
    func makeBackend(_ script: String) throws -> (LocalPodBackend, String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-pods-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = "\(folder)/worker.sh"
        try ("#!/bin/sh\n" + script).write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        let backend = try LocalPodBackend(executable: path, baseArguments: ["worker", "j1"], logDirectory: "\(folder)/logs", logger: logger)
        return (backend, folder)
    }

    static let polite = """
        echo "started $@"
        trap 'echo "got TERM"; exit 0' TERM
        while true; do sleep 0.05; done
        """

    /// Whether `pid` runs (a zombie waiting to be reaped by init does not).
    func isAlive(_ pid: Int32) -> Bool {
        guard kill(pid, 0) == 0 else { return false }
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        guard let close = stat.lastIndex(of: ")") else { return true }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    func waitForLog(_ backend: LocalPodBackend, _ id: String, containing text: String) async -> String {
        for _ in 0..<200 {
            let log = (try? String(contentsOfFile: backend.logFile(of: id), encoding: .utf8)) ?? ""
            if log.contains(text) { return log }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return (try? String(contentsOfFile: backend.logFile(of: id), encoding: .utf8)) ?? ""
    }

    @Test("Starts workers with their arguments and ids, logs each to its file, stops them with SIGTERM")
    func startAndStop() async throws {
        let (backend, _) = try makeBackend(Self.polite)
        let one = try await backend.start(worker: "w1")
        let two = try await backend.start(worker: "w2")
        #expect(await backend.list().map(\.id) == ["w1", "w2"])
        #expect(isAlive(one.pid!) && isAlive(two.pid!))
        #expect(await waitForLog(backend, "w1", containing: "started").contains("started worker j1 --worker-id w1"))
        #expect(await waitForLog(backend, "w2", containing: "started").contains("started worker j1 --worker-id w2"))
        await #expect(throws: FlotillaError.self) { _ = try await backend.start(worker: "w1") }

        await backend.stop(worker: "w1", grace: .seconds(5))
        let pods = await backend.list()
        #expect(pods.first { $0.id == "w1" }?.exited == true)
        #expect(pods.first { $0.id == "w1" }?.exitStatus == 0, "the script's TERM handler exits 0")
        #expect(await waitForLog(backend, "w1", containing: "got TERM").contains("got TERM"))
        #expect(!isAlive(one.pid!))
        #expect(isAlive(two.pid!))
        await backend.stopAll(grace: .seconds(5))
        #expect(!isAlive(two.pid!))
    }

    @Test("A worker that ignores SIGTERM is killed after the grace period")
    func killAfterGrace() async throws {
        let (backend, _) = try makeBackend("trap '' TERM\nwhile true; do sleep 0.05; done\n")
        let pod = try await backend.start(worker: "w1")
        try await Task.sleep(for: .milliseconds(100))
        let started = ContinuousClock.now
        await backend.stop(worker: "w1", grace: .milliseconds(500))
        let took = ContinuousClock.now - started
        #expect(took >= .milliseconds(500))
        #expect(await backend.list().first?.exitStatus == 128 + SIGKILL)
        #expect(!isAlive(pod.pid!))
    }

    @Test("Replace kills the worker and starts a new process with the same id; exits are reported with their status")
    func replaceAndExit() async throws {
        let (backend, _) = try makeBackend("case \"$4\" in w2) exit 7;; esac\n" + Self.polite)
        let first = try await backend.start(worker: "w1")
        _ = await waitForLog(backend, "w1", containing: "started")  // the first one runs before it is replaced
        let second = try await backend.replace(worker: "w1")
        #expect(first.pid != second.pid)
        #expect(!isAlive(first.pid!))
        #expect(isAlive(second.pid!))
        var starts = 0
        for _ in 0..<200 {
            starts = await waitForLog(backend, "w1", containing: "started").components(separatedBy: "started").count - 1
            if starts >= 2 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(starts == 2, "both processes append to the worker's log")

        _ = try await backend.start(worker: "w2")
        var exited: WorkerPod?
        for _ in 0..<200 {
            exited = await backend.list().first { $0.id == "w2" && $0.exited }
            if exited != nil { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(exited?.exitStatus == 7)
        #expect(exited?.stopRequested == false, "an exit nobody asked for")
        await backend.forget(worker: "w2")
        #expect(await backend.list().map(\.id) == ["w1"])
        await backend.stopAll(grace: .seconds(2))
        #expect(!isAlive(second.pid!))
    }

    @Test("Workers started in their own process group are stopped with their children")
    func noOrphans() async throws {
        // The "worker" starts a child of its own; stopping the worker must stop that one too.
        let (backend, folder) = try makeBackend("sleep 30 &\necho $! > \"$(dirname \"$0\")/child.pid\"\nwait\n")
        _ = try await backend.start(worker: "w1")
        var child: Int32?
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: "\(folder)/child.pid", encoding: .utf8),
               let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                child = pid
                break
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        let pid = try #require(child)
        #expect(isAlive(pid))
        await backend.stopAll(grace: .seconds(2))
        // The grandchild is reparented to init, which reaps it shortly after it dies.
        var gone = false
        for _ in 0..<200 {
            if !isAlive(pid) { gone = true; break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(gone)
    }

    @Test("An executable that is not there is refused with a clear error")
    func missingExecutable() {
        let error = #expect(throws: FlotillaError.self) {
            _ = try LocalPodBackend(executable: "/no/such/flotilla", baseArguments: [], logDirectory: "/tmp/x", logger: logger)
        }
        #expect(error?.message.contains("/no/such/flotilla") == true)
    }
}
