import Foundation

/// A temporary folder for one job of a CLI test: its input files and its spec.
struct JobFolder {
    let path: String

    /// A new folder named `flotilla-<name>-<random>` in the temporary directory.
    init(_ name: String) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(name)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// A job id that no other test uses: `<name>-<random>`.
    static func jobID(_ name: String) -> String { "\(name)-\(UUID().uuidString.prefix(6).lowercased())" }

    /// Writes `text` to `name` in the folder; returns its path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: "\(path)/\(name)", atomically: true, encoding: .utf8)
        return "\(path)/\(name)"
    }

    /// JSON lines `{"id":"<prefix><i>","n":<i>}` for i in 0..<count.
    @discardableResult
    func jsonLines(_ name: String = "in.jsonl", count: Int, idPrefix: String = "s") throws -> String {
        try write(name, (0..<count).map { #"{"id":"\#(idPrefix)\#($0)","n":\#($0)}"# }.joined(separator: "\n") + "\n")
    }
}
