import FlotillaCore

extension SpecReader {
    static let inputKeys = ["file", "url", "inline", "format", "id"]

    mutating func readInputs(_ node: SpecNode) throws(FlotillaError) -> [InputConfig] {
        let elements = try node.sequence()
        if elements.isEmpty { throw node.error("must list at least one input (file, url or inline)") }
        var inputs: [InputConfig] = []
        for element in elements {
            inputs.append(try readInput(element))
        }
        return inputs
    }

    mutating func readInput(_ node: SpecNode) throws(FlotillaError) -> InputConfig {
        let map = try node.mapping(allowed: Self.inputKeys)
        let kinds = ["file", "url", "inline"].filter { map.has($0) }
        guard kinds.count == 1, let kind = kinds.first else {
            if kinds.isEmpty { throw node.error("needs one of file, url or inline") }
            throw node.error("has \(kinds.joined(separator: " and ")); give exactly one of file, url or inline")
        }
        switch kind {
        case "file":
            let fileNode = try map.required("file")
            let path = try fileNode.nonEmptyString()
            let format = try readFormat(map, source: path)
            let idField = try readIDField(map)
            return .lines(LinesInput(.file(path: SpecPaths.resolve(path, against: base)), format: format, idField: idField))
        case "url":
            let urlNode = try map.required("url")
            let url = try urlNode.nonEmptyString()
            if let problem = Self.problem(withURL: url) { throw urlNode.error(problem) }
            let format = try readFormat(map, source: url)
            let idField = try readIDField(map)
            return .lines(LinesInput(.url(url), format: format, idField: idField))
        default:
            for key in ["format", "id"] {
                if let extra = map[key] {
                    throw extra.error("applies only to file and url inputs; inline samples carry their own ids")
                }
            }
            return .inline(try readInline(map.required("inline")))
        }
    }

    /// `id:` when given (then the CSV header must have it), else the default `id` (see ``IDField``).
    func readIDField(_ map: SpecMapping) throws(FlotillaError) -> IDField {
        IDField(try map["id"].map { node throws(FlotillaError) in try node.nonEmptyString() })
    }

    func readFormat(_ map: SpecMapping, source: String) throws(FlotillaError) -> LineFormat {
        if let formatNode = map["format"] {
            let text = try formatNode.nonEmptyString()
            guard let format = LineFormat(rawValue: text) else {
                throw formatNode.error("must be jsonl or csv, not '\(text)'")
            }
            return format
        }
        guard let format = LineFormat.fromExtension(of: source) else {
            let path = map.owner.path
            throw map.owner.plainError(
                "\(path).format is needed: '\(source)' has no .jsonl, .ndjson, .json or .csv extension (set format: jsonl or format: csv)")
        }
        return format
    }

    /// Inline samples: an element that is a mapping with an `input` key (and optionally `id`, no
    /// other keys) is a sample; any other element is itself the input, with id `inline:<n>` (`n`
    /// counts all inline elements of the spec from 1, like line numbers).
    mutating func readInline(_ node: SpecNode) throws(FlotillaError) -> [InlineSample] {
        let elements = try node.sequence()
        if elements.isEmpty { throw node.error("must list at least one sample") }
        var samples: [InlineSample] = []
        for element in elements {
            inlineCount += 1
            let number = inlineCount
            var id = "inline:\(number)"
            var input: JSONValue
            if case .mapping(let mapping) = element.node,
               mapping.keys.contains(where: { $0.string == "input" }),
               mapping.keys.allSatisfy({ $0.string == "input" || $0.string == "id" }) {
                let map = try element.mapping(allowed: ["id", "input"])
                if let idNode = map["id"] {
                    id = try idNode.text()
                    if id.isEmpty { throw idNode.error("must not be empty") }
                }
                // `input:` with nothing after it is a null input, not a missing one.
                if let inputNode = map["input"] {
                    input = try inputNode.jsonValue()
                } else {
                    input = .null
                }
            } else {
                input = try element.jsonValue()
            }
            if let earlier = inlineIDs[id] {
                throw element.error("has the id '\(id)', already used by \(earlier); sample ids must be unique")
            }
            inlineIDs[id] = element.path
            samples.append(InlineSample(id: id, input: input))
        }
        return samples
    }

    /// HTTP inputs: an `http://` or `https://` URL with a host.
    static func problem(withURL url: String) -> String? {
        let lower = url.lowercased()
        let scheme: String
        if lower.hasPrefix("http://") {
            scheme = "http://"
        } else if lower.hasPrefix("https://") {
            scheme = "https://"
        } else {
            return "must be an http:// or https:// URL, not '\(url)' (use file: for local files)"
        }
        let rest = url.dropFirst(scheme.count)
        let host = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if host.isEmpty { return "must name a host, not '\(url)'" }
        if url.contains(where: { $0.isWhitespace }) { return "must not contain spaces (percent-encode them): '\(url)'" }
        return nil
    }
}
