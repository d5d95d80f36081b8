#if canImport(Glibc)
import Glibc
#endif
import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Logging
import Synchronization

/// Paths and helpers shared by the predictor tests. Child processes are real python3 processes
/// running the fixtures in python/tests/fixtures with PYTHONPATH pointing at python/.
enum Fixtures {
    /// The repository's python/ folder, found by walking up from this file.
    static let pythonDir: String = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            let candidate = url.appendingPathComponent("python/flotilla_predictor/__init__.py")
            if FileManager.default.fileExists(atPath: candidate.path) { return url.appendingPathComponent("python").path }
            url.deleteLastPathComponent()
        }
        return "/work/main/python"
    }()

    static var repoRoot: String { URL(fileURLWithPath: pythonDir).deletingLastPathComponent().path }

    static func fixture(_ name: String) -> String { "\(pythonDir)/tests/fixtures/\(name)" }

    static let pythonAvailable: Bool = {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
            FileManager.default.isExecutableFile(atPath: "\($0)/python3")
        }
    }()

    /// A pool config for a python fixture with test-friendly timeouts.
    static func config(
        _ name: String = "test", script: String, _ args: [String] = [], batchSize: Int = 32,
        processes: Int = 1, maxProcesses: Int? = nil, maxAttempts: Int = 3, batchTimeout: Duration = .seconds(30),
        isolatePoison: Bool = true
    ) -> PredictorPoolConfig {
        PredictorPoolConfig(
            name: name, command: .process(argv: ["python3", fixture(script)] + args), batchSize: batchSize,
            minProcesses: processes, maxProcesses: maxProcesses ?? processes, batchTimeout: batchTimeout,
            startupTimeout: .seconds(30), maxAttempts: maxAttempts, isolatePoison: isolatePoison,
            environment: ["PYTHONPATH": pythonDir, "PYTHONDONTWRITEBYTECODE": "1", tagVariable: UUID().uuidString],
            shutdownGrace: .seconds(2), autoscale: nil
        )
    }

    static func samples(_ count: Int, _ make: (Int) -> JSONValue = { .int(Int64($0)) }) -> [PredictorSample] {
        (0..<count).map { PredictorSample(id: "s\($0)", value: make($0)) }
    }

    /// A fresh file path that does not exist yet (for the fixtures' "once" markers).
    static func marker() -> String {
        NSTemporaryDirectory() + "flotilla-marker-\(UUID().uuidString)"
    }

    /// Set to a fresh value in each `config`'s environment, so `processes(of:)` finds that pool's children.
    static let tagVariable = "FLOTILLA_TEST_POOL"

    /// The live child processes of this test process started for `config` (found through /proc
    /// by the tag in their environment; the pool itself does not expose pids).
    static func processes(of config: PredictorPoolConfig) -> [Int32] {
        guard let tag = config.environment[tagVariable] else { return [] }
        let wanted = Array("\(tagVariable)=\(tag)".utf8)
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let fields = stat.split(separator: ")").last?.split(separator: " "), fields.count > 2,
                  Int32(fields[1]) == getpid(), fields[0] != "Z",
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return false }
            return environ.split(separator: 0).contains { Array($0) == wanted }
        }.sorted()
    }

    /// True when `pid` no longer exists (reaped: a zombie would still answer kill(pid, 0)).
    static func isGone(_ pid: Int32) -> Bool {
        kill(pid, 0) != 0 && errno == ESRCH
    }
}

/// Starts a pool, runs `body`, and always shuts the pool down.
func withPool<T>(_ config: PredictorPoolConfig, logger: Logger = Logger(label: "test"), _ body: (PredictorPool) async throws -> T) async throws -> T {
    let pool = try PredictorPool(config: config, logger: logger)
    try await pool.start()
    do {
        let result = try await body(pool)
        await pool.shutdown()
        return result
    } catch {
        await pool.shutdown()
        throw error
    }
}

extension Result {
    var success: Success? { if case .success(let v) = self { v } else { nil } }
    var error: Failure? { if case .failure(let e) = self { e } else { nil } }
}

/// A log handler that keeps what it is given, to check that a child's stderr reaches the Logger.
/// A struct (log handlers are values: each Logger copy has its own metadata) over a shared store.
struct CapturingLogHandler: LogHandler {
    struct Entry: Sendable {
        var message: String
        var metadata: [String: String]
    }
    final class Store: Sendable {
        let entries = Mutex<[Entry]>([])
        var all: [Entry] { entries.withLock { $0 } }
    }
    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    init(store: Store) { self.store = store }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        for (k, v) in event.metadata ?? [:] { all[k] = v }
        let entry = Entry(message: "\(event.message)", metadata: all.mapValues { "\($0)" })
        store.entries.withLock { $0.append(entry) }
    }
}

extension Result where Success == JSONBytes {
    /// The output as a tree, if the sample succeeded.
    var value: JSONValue? { success?.value }
}

extension PredictorSample {
    /// The input as a tree.
    var value: JSONValue { input.value }
}

extension PredictorProcess.Reply {
    /// The outputs as trees (nil for an error), or nil for a batch error.
    var values: [JSONValue?]? {
        guard case .outputs(let outputs) = self else { return nil }
        return outputs.map(\.value)
    }
}
