import FlotillaCore
import Yams

/// A YAML node of a job spec together with its field path ("stages[0].batch") and file name, so
/// every conversion can fail with a message naming the field and `file:line`.
///
/// Internal: the loader's walking helper. Yams nodes are not Sendable; a `SpecNode` lives only
/// for one `JobSpecLoader.load` call.
struct SpecNode {
    let node: Node
    /// The field path, e.g. "shard.samples"; empty for the document root.
    let path: String
    let file: String

    /// `file:line` of this node.
    var location: String {
        guard let mark = node.mark else { return file }
        return "\(file):\(mark.line)"
    }

    /// The path for messages: the root is called "the job spec".
    var displayPath: String { path.isEmpty ? "the job spec" : path }

    /// An `.invalidConfiguration` error: "<path> <problem> (<file>:<line>)".
    func error(_ problem: String) -> FlotillaError {
        FlotillaError(.invalidConfiguration, "\(displayPath) \(problem) (\(location))")
    }

    /// An `.invalidConfiguration` error with a message that names its fields itself: "<message> (<file>:<line>)".
    func plainError(_ message: String) -> FlotillaError {
        FlotillaError(.invalidConfiguration, "\(message) (\(location))")
    }

    func child(_ key: String, _ node: Node) -> SpecNode {
        SpecNode(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    // MARK: Kinds

    /// The node's tag name after YAML 1.1 core resolution ("tag:yaml.org,2002:int", ...).
    private var tagName: String { node.tag.rawValue }

    var isNull: Bool {
        guard case .scalar = node else { return false }
        return tagName == Tag.Name.null.rawValue
    }

    /// A short description of what the node is, for "must be X, not Y" messages.
    var kindDescription: String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar(let scalar):
            if isNull { return "empty" }
            return "'\(scalar.string)'"
        }
    }

    // MARK: Containers

    /// This node as a mapping whose keys must all be in `allowed` (in that order in messages).
    func mapping(allowed: [String]) throws(FlotillaError) -> SpecMapping {
        guard case .mapping(let mapping) = node else {
            throw error("must be a mapping with keys \(allowed.joined(separator: ", ")), not \(kindDescription)")
        }
        var entries: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                throw SpecNode(node: keyNode, path: path, file: file)
                    .error("has a key that is not a plain name")
            }
            guard allowed.contains(key.string) else {
                let place = path.isEmpty ? "at the top level" : "in \(path)"
                let keyLocation = SpecNode(node: keyNode, path: path, file: file).location
                throw FlotillaError(
                    .invalidConfiguration,
                    "unknown key '\(key.string)' \(place) (\(keyLocation)); expected one of: \(allowed.joined(separator: ", "))"
                )
            }
            entries.append((key.string, value))
        }
        return SpecMapping(owner: self, entries: entries)
    }

    /// This node as a list of child nodes, paths "<path>[i]".
    func sequence() throws(FlotillaError) -> [SpecNode] {
        guard case .sequence(let sequence) = node else {
            throw error("must be a list, not \(kindDescription)")
        }
        return sequence.enumerated().map { index, element in
            SpecNode(node: element, path: "\(path)[\(index)]", file: file)
        }
    }

    // MARK: Scalars

    private func scalarString(expected: String) throws(FlotillaError) -> String {
        guard case .scalar(let scalar) = node, !isNull else {
            throw error("must be \(expected), not \(kindDescription)")
        }
        return scalar.string
    }

    /// Any scalar as text (numbers and booleans as written), e.g. for environment values.
    func text() throws(FlotillaError) -> String {
        try scalarString(expected: "a string")
    }

    /// A string; a number or boolean is refused so that `name: 123` or `builtin: yes` is noticed.
    func string() throws(FlotillaError) -> String {
        let value = try scalarString(expected: "a string")
        let tag = tagName
        if tag != Tag.Name.str.rawValue {
            throw error("must be a string, not '\(value)' (quote it if you mean the text)")
        }
        return value
    }

    /// A non-empty string.
    func nonEmptyString() throws(FlotillaError) -> String {
        let value = try string()
        if value.isEmpty { throw error("must not be empty") }
        return value
    }

    func int() throws(FlotillaError) -> Int {
        let value = try scalarString(expected: "an integer")
        guard tagName == Tag.Name.int.rawValue, let number = node.int else {
            throw error("must be an integer, not '\(value)'")
        }
        return number
    }

    /// A number, integer or not (`0.5`, `1`).
    func number() throws(FlotillaError) -> Double {
        let value = try scalarString(expected: "a number")
        guard tagName == Tag.Name.int.rawValue || tagName == Tag.Name.float.rawValue, let number = Double(value), number.isFinite else {
            throw error("must be a number, not '\(value)'")
        }
        return number
    }

    func bool() throws(FlotillaError) -> Bool {
        let value = try scalarString(expected: "true or false")
        guard tagName == Tag.Name.bool.rawValue, let flag = node.bool else {
            throw error("must be true or false, not '\(value)'")
        }
        return flag
    }

    /// A duration: "500ms", "5s", "2m", "1h" or a plain number of seconds.
    func duration() throws(FlotillaError) -> Duration {
        let value = try scalarString(expected: "a duration such as 500ms, 5s or 2m")
        guard let duration = SpecDuration.parse(value) else {
            throw error("must be a duration such as 500ms, 5s, 2m or a number of seconds, not '\(value)'")
        }
        return duration
    }

    /// A list of strings; a single scalar is refused (argv must be explicit).
    func stringList() throws(FlotillaError) -> [String] {
        guard case .sequence = node else {
            throw error("must be a list of strings, not \(kindDescription)")
        }
        var result: [String] = []
        for element in try sequence() {
            result.append(try element.text())
        }
        return result
    }

    /// A mapping of names to scalar values (numbers and booleans taken as written).
    func stringMap() throws(FlotillaError) -> [String: String] {
        guard case .mapping(let mapping) = node else {
            throw error("must be a mapping of names to values, not \(kindDescription)")
        }
        var result: [String: String] = [:]
        for (keyNode, valueNode) in mapping {
            guard case .scalar(let key) = keyNode, !key.string.isEmpty else {
                throw SpecNode(node: keyNode, path: path, file: file).error("has an empty or non-text key")
            }
            result[key.string] = try child(key.string, valueNode).text()
        }
        return result
    }

    /// The node as a JSON value: for inline inputs.
    func jsonValue() throws(FlotillaError) -> JSONValue {
        switch node {
        case .alias:
            throw error("uses an alias, which is not supported here")
        case .sequence:
            var values: [JSONValue] = []
            for element in try sequence() { values.append(try element.jsonValue()) }
            return .array(values)
        case .mapping(let mapping):
            var object: [String: JSONValue] = [:]
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let key) = keyNode else {
                    throw SpecNode(node: keyNode, path: path, file: file).error("has a key that is not text")
                }
                object[key.string] = try child(key.string, valueNode).jsonValue()
            }
            return .object(object)
        case .scalar(let scalar):
            switch tagName {
            case Tag.Name.null.rawValue: return .null
            case Tag.Name.bool.rawValue: return node.bool.map(JSONValue.bool) ?? .string(scalar.string)
            case Tag.Name.int.rawValue:
                if let number = node.int { return .int(Int64(number)) }
                return .string(scalar.string)
            case Tag.Name.float.rawValue:
                if let number = node.float, number.isFinite { return .double(number) }
                throw error("holds '\(scalar.string)', which is not a finite number JSON can carry")
            default: return .string(scalar.string)
            }
        }
    }
}

/// The checked entries of a YAML mapping, looked up by key.
struct SpecMapping {
    let owner: SpecNode
    let entries: [(String, Node)]

    /// The child for `key`, or nil when absent. An explicit null (`key:` with nothing) counts as absent.
    subscript(key: String) -> SpecNode? {
        guard let entry = entries.first(where: { $0.0 == key }) else { return nil }
        let child = owner.child(key, entry.1)
        return child.isNull ? nil : child
    }

    /// The child for `key`, or an error "<path>.<key> is required (<file>:<line of the mapping>)".
    func required(_ key: String) throws(FlotillaError) -> SpecNode {
        guard let child = self[key] else {
            let path = owner.path.isEmpty ? key : "\(owner.path).\(key)"
            throw FlotillaError(.invalidConfiguration, "\(path) is required (\(owner.location))")
        }
        return child
    }

    func has(_ key: String) -> Bool { self[key] != nil }
}
