import FlotillaCore
import Foundation
import Yams

/// Reads a job spec (YAML) into a validated `JobConfig`.
///
/// The YAML is walked node by node (`Yams.compose`) so that every error names the field path and
/// `file:line`: "shard.samples must be > 0 (job.yaml:7)". Unknown keys are errors. All errors have
/// the code `.invalidConfiguration`. The loader reads only the spec file itself: input files and
/// predictor programs are checked later, by the code that uses them. See docs/JOBSPEC.md.
public enum JobSpecLoader {
    /// The top-level keys, in the order messages list them.
    static let topLevelKeys = ["job", "inputs", "shard", "stages", "outputs", "workers", "faults", "delivery", "kafka", "mode"]

    /// Loads the spec at `path`; relative paths inside it resolve against its folder.
    ///
    /// - Parameter builtins: the builtin predictor names to accept; nil accepts any well-formed name.
    public static func load(path: String, builtins: Set<String>? = nil) throws(FlotillaError) -> JobConfig {
        let text: String
        do {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw FlotillaError(.invalidConfiguration, "cannot read job spec '\(path)': no such file")
            }
            if isDirectory.boolValue {
                throw FlotillaError(.invalidConfiguration, "cannot read job spec '\(path)': it is a folder")
            }
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let decoded = String(data: data, encoding: .utf8) else {
                throw FlotillaError(.invalidConfiguration, "cannot read job spec '\(path)': it is not UTF-8 text")
            }
            text = decoded
        } catch let error as FlotillaError {
            throw error
        } catch {
            throw FlotillaError(.invalidConfiguration, "cannot read job spec '\(path)'", underlying: error)
        }
        return try load(yaml: text, fileName: path, builtins: builtins)
    }

    /// Loads a spec given as text. `fileName` is used in messages ("job.yaml:7"); relative paths
    /// resolve against `baseDirectory`, by default the folder of `fileName` (itself relative to the
    /// current directory).
    public static func load(
        yaml: String,
        fileName: String,
        baseDirectory: String? = nil,
        builtins: Set<String>? = nil
    ) throws(FlotillaError) -> JobConfig {
        let base = absoluteBase(baseDirectory ?? SpecPaths.directory(of: fileName))
        let root = try compose(yaml: yaml, fileName: fileName)
        var reader = SpecReader(base: base, builtins: builtins)
        return try reader.read(root)
    }

    /// A new job id: "job-<yyyyMMdd-HHmmss>-<4 hex>" in UTC, e.g. "job-20261120-154501-3fa2".
    public static func generateJobID(now: Date = Date()) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: now)
        func pad(_ value: Int?, _ width: Int) -> String {
            let text = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        let date = pad(parts.year, 4) + pad(parts.month, 2) + pad(parts.day, 2)
        let time = pad(parts.hour, 2) + pad(parts.minute, 2) + pad(parts.second, 2)
        return "job-\(date)-\(time)-\(String(repeating: "0", count: 4 - suffix.count))\(suffix)"
    }

    /// Why `id` is not a valid job id, or nil when it is: `[a-z0-9._-]`, 1 to 64 characters.
    public static func problem(withJobID id: String) -> String? {
        if id.isEmpty { return "must not be empty" }
        if id.count > 64 { return "must be at most 64 characters, not \(id.count)" }
        if id == "." || id == ".." { return "must not be '.' or '..'" }
        if let bad = id.first(where: { !isJobIDCharacter($0) }) {
            return "may hold only a-z, 0-9, '.', '_' and '-', not '\(bad)'"
        }
        return nil
    }

    static func isJobIDCharacter(_ character: Character) -> Bool {
        guard character.isASCII else { return false }
        return character.isLowercase || character.isNumber || character == "." || character == "_" || character == "-"
    }

    private static func absoluteBase(_ directory: String) -> String {
        if directory.hasPrefix("/") { return SpecPaths.normalize(directory) }
        return SpecPaths.resolve(directory, against: FileManager.default.currentDirectoryPath)
    }

    /// Parses the YAML into one root node, turning Yams errors into messages with the line.
    private static func compose(yaml: String, fileName: String) throws(FlotillaError) -> SpecNode {
        let node: Node?
        do {
            node = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw FlotillaError(.invalidConfiguration, describe(error, fileName: fileName))
        } catch {
            throw FlotillaError(.invalidConfiguration, "malformed YAML in \(fileName)", underlying: error)
        }
        guard let node else {
            throw FlotillaError(
                .invalidConfiguration,
                "\(fileName) is empty; a job spec needs at least 'inputs' and 'stages'")
        }
        return SpecNode(node: node, path: "", file: fileName)
    }

    static func describe(_ error: YamlError, fileName: String) -> String {
        func at(_ mark: Mark) -> String { "\(fileName):\(mark.line)" }
        func context(_ context: YamlError.Context?) -> String {
            guard let context else { return "" }
            return " (\(context.text) at line \(context.mark.line))"
        }
        switch error {
        case .scanner(let ctx, let problem, let mark, _),
             .parser(let ctx, let problem, let mark, _),
             .composer(let ctx, let problem, let mark, _):
            return "malformed YAML: \(problem)\(context(ctx)) (\(at(mark)))"
        case .reader(let problem, let offset, _, _):
            return "malformed YAML: \(problem) at byte \(offset ?? 0) of \(fileName)"
        case .duplicatedKeysInMapping(let duplicates, let ctx):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return "duplicate key \(keys) (\(at(ctx.mark)))"
        default:
            return "malformed YAML in \(fileName): \(error)"
        }
    }
}
