import FlotillaCore
import Foundation
import Logging
import Synchronization

/// A fresh temporary directory, removed by `remove()`.
struct TempDir: Sendable {
    let path: String

    init() throws {
        let base = FileManager.default.temporaryDirectory.path
        path = base + "/flotilla-sources-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// Writes `bytes` to `name` inside the directory and returns the full path.
    @discardableResult
    func write(_ name: String, _ bytes: [UInt8]) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true
        )
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try write(name, Array(text.utf8))
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A log handler that keeps every message, for tests that check what was logged.
struct RecordingLogHandler: LogHandler {
    final class Store: Sendable {
        let entries = Mutex<[(level: Logger.Level, message: String)]>([])
        var warnings: [String] { entries.withLock { $0.filter { $0.level == .warning }.map(\.message) } }
    }

    let store: Store
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        store.entries.withLock { $0.append((event.level, event.message.description)) }
    }

    /// A logger writing into a new store.
    static func logger() -> (Logger, Store) {
        let store = Store()
        return (Logger(label: "test") { _ in RecordingLogHandler(store: store) }, store)
    }
}

extension Sample {
    /// The input value, or nil for an error sample.
    var value: JSONValue? { (try? input.get())?.value }
    /// The error message, or nil for a good sample.
    var errorMessage: String? {
        if case .failure(let error) = input { return error.message }
        return nil
    }
}

/// Expects `body` to throw a FlotillaError and returns it (nil when nothing was thrown).
func flotillaError(_ body: () async throws -> Void) async -> FlotillaError? {
    do {
        try await body()
        return nil
    } catch let error as FlotillaError {
        return error
    } catch {
        return FlotillaError(.internal, "unexpected error type: \(error)")
    }
}

/// JSON lines with ids `s0…`, a text and a number; the input for end-to-end tests.
func jsonLines(_ count: Int, lineEnding: String = "\n") -> (text: String, values: [JSONValue]) {
    var text = ""
    var values: [JSONValue] = []
    for index in 0..<count {
        let words = String(repeating: "w\(index % 7) ", count: index % 11)
        text += #"{"id":"s\#(index)","text":"\#(words)","n":\#(index),"x":\#(Double(index) / 4)}"# + lineEnding
        values.append(.object(["id": .string("s\(index)"), "text": .string(words), "n": .int(Int64(index)), "x": .double(Double(index) / 4)]))
    }
    return (text, values)
}
