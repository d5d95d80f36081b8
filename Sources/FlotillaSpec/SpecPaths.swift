/// Path rules of the job spec. Purely lexical: nothing here touches the file system.
public enum SpecPaths {
    /// `path` made absolute against `base` (itself absolute) and normalized: "." and ".." parts
    /// removed, repeated slashes collapsed. `~` is not expanded.
    public static func resolve(_ path: String, against base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        return normalize(joined)
    }

    /// An absolute path with "." and ".." removed lexically ("/a/b/../c" → "/a/c").
    public static func normalize(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The folder part of `path` ("/a/b/job.yaml" → "/a/b"; "job.yaml" → ".").
    public static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Whether a predictor argv entry is a relative path to resolve against the spec's folder:
    /// it contains a `/`, does not start with `/`, `-` or `~`, and contains no whitespace, `=`
    /// or `:` (so flags, `--key=value`, URLs and inline code stay as written).
    public static func isRelativePathArgument(_ argument: String) -> Bool {
        guard argument.contains("/"), let first = argument.first else { return false }
        if first == "/" || first == "-" || first == "~" { return false }
        return !argument.contains(where: { $0.isWhitespace || $0 == "=" || $0 == ":" })
    }

    /// `argv` with its relative path entries resolved against `base` (see `isRelativePathArgument`).
    public static func resolveArguments(_ argv: [String], against base: String) -> [String] {
        argv.map { isRelativePathArgument($0) ? resolve($0, against: base) : $0 }
    }
}
