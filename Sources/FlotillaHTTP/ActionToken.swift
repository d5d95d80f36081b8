import Crypto
import FlotillaCore
import Foundation

/// The bearer token that allows the HTTP actions (`POST /actions/...`). Without one, actions are
/// refused: the read-only pages never need it.
public struct ActionToken: Sendable {
    /// The environment variable holding the token itself.
    public static let variable = "FLOTILLA_HTTP_TOKEN"
    /// The environment variable naming a file that holds the token (first line, trimmed).
    public static let fileVariable = "FLOTILLA_HTTP_TOKEN_FILE"
    /// Tokens shorter than this are refused: a guessable token is no protection.
    public static let minimumLength = 16

    private let digest: [UInt8]

    /// - Throws: `.invalidConfiguration` for a token shorter than `minimumLength`.
    public init(_ token: String) throws(FlotillaError) {
        let token = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.utf8.count >= Self.minimumLength else {
            throw FlotillaError(.invalidConfiguration, "the HTTP token must have at least \(Self.minimumLength) characters (e.g. openssl rand -hex 24)")
        }
        digest = Array(SHA256.hash(data: Data(token.utf8)))
    }

    /// The token from `file` (e.g. `--http-token-file`), else `FLOTILLA_HTTP_TOKEN_FILE`, else
    /// `FLOTILLA_HTTP_TOKEN`; nil when none is set.
    public static func load(file: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment)
        throws(FlotillaError) -> ActionToken?
    {
        // A file the environment names but nobody made is an optional Secret left out (a
        // Kubernetes pod's mount): actions stay disabled, as without a token.
        let fromEnvironment = environment[fileVariable].flatMap { $0.isEmpty || !FileManager.default.fileExists(atPath: $0) ? nil : $0 }
        if let path = file ?? fromEnvironment {
            let text: String
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw FlotillaError(.invalidConfiguration, "cannot read the HTTP token file \(path)", underlying: error)
            }
            return try ActionToken(String(text.split(separator: "\n", maxSplits: 1).first ?? ""))
        }
        guard let value = environment[variable], !value.isEmpty else { return nil }
        return try ActionToken(value)
    }

    /// Whether `candidate` is the token. Both sides are hashed first and the digests compared
    /// in full whatever their bytes, so the time taken says nothing about the token.
    public func matches(_ candidate: String) -> Bool {
        Self.constantTimeEqual(Array(SHA256.hash(data: Data(candidate.utf8))), digest)
    }

    /// Whether `authorization` is `Bearer <token>`.
    public func allows(authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7, authorization.prefix(7).lowercased() == "bearer " else { return false }
        return matches(String(authorization.dropFirst(7)).trimmingCharacters(in: .whitespaces))
    }

    /// Equal byte arrays, in time that depends on their lengths only.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }
}
