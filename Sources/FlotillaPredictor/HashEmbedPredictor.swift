import FlotillaCore

/// `hash-embed`: a 64-dimensional feature-hashing text embedding, L2-normalised.
///
/// Text: the input itself when it is a string, else its `"text"` field when that is a string,
/// else the input's canonical JSON text (keys sorted). Tokens: maximal runs of letters and digits,
/// lowercased. Each token adds ±1 to dimension `h mod 64`, where `h` is the token's 64-bit FNV-1a
/// hash of its UTF-8 bytes and the sign is + when bit 32 of `h` is 0 (a second, independent bit, so
/// that colliding tokens tend to cancel rather than pile up). The vector is divided by its L2 norm
/// (all zeros when there are no tokens). Output: `{"embedding": [64 numbers], "tokens": n}`.
/// Deterministic across runs, machines and languages (docs/PREDICTORS.md has a Python reference).
public struct HashEmbedPredictor: BuiltinPredictor {
    public let name = "hash-embed"
    public static let dimensions = 64

    public init() {}

    public func predict(_ inputs: [JSONBytes]) -> [Result<JSONBytes, PredictionError>] {
        inputs.map { input in
            let (vector, count) = Self.embed(Self.text(of: input.value))
            return .success(JSONBytes(.object(["embedding": .array(vector.map { .double($0) }), "tokens": .int(Int64(count))])))
        }
    }

    /// The text a sample is embedded from.
    static func text(of input: JSONValue) -> String {
        if case .string(let text) = input { return text }
        if case .string(let text) = input["text"] ?? .null { return text }
        return String(decoding: JSONWriter.bytes(input), as: UTF8.self)
    }

    /// The embedding of `text` and its token count.
    public static func embed(_ text: String) -> ([Double], Int) {
        var vector = [Double](repeating: 0, count: dimensions)
        var tokens = 0
        for token in tokenize(text) {
            let hash = fnv1a(token)
            let index = Int(hash % UInt64(dimensions))
            vector[index] += (hash >> 32) & 1 == 0 ? 1 : -1
            tokens += 1
        }
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        if norm > 0 { vector = vector.map { $0 / norm } }
        return (vector, tokens)
    }

    static func tokenize(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = ""
        for scalar in text.unicodeScalars {
            if scalar.properties.isAlphabetic || scalar.properties.numericType != nil {
                current.unicodeScalars.append(scalar)
            } else if !current.isEmpty {
                tokens.append(current.lowercased())
                current = ""
            }
        }
        if !current.isEmpty { tokens.append(current.lowercased()) }
        return tokens
    }

    static func fnv1a(_ token: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in token.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
