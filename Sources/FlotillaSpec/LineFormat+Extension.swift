import FlotillaCore

extension LineFormat {
    /// The format a file name or URL path implies by its extension, if any.
    public static func fromExtension(of path: String) -> LineFormat? {
        var name = Substring(path)
        // Ignore a URL's query or fragment.
        if let cut = name.firstIndex(where: { $0 == "?" || $0 == "#" }) { name = name[..<cut] }
        guard let dot = name.lastIndex(of: "."), !name[dot...].contains("/") else { return nil }
        switch name[name.index(after: dot)...].lowercased() {
        case "jsonl", "ndjson", "json": return .jsonl
        case "csv": return .csv
        default: return nil
        }
    }
}
