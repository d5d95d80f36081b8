import Crypto
import Foundation

/// Manifest signing: an HMAC-SHA256 over a job's id and config, with a key handed to `submit`,
/// the controller and the workers out of band (`FLOTILLA_MANIFEST_KEY`, or a file named by
/// `FLOTILLA_MANIFEST_KEY_FILE`). Anyone who can write the jobs topic can otherwise make every
/// worker run any command: with a key, a manifest without a valid signature is refused.
public struct ManifestSignature: Sendable {
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public static let prefix = "hmac-sha256:"

    public init(key: [UInt8]) {
        keyBytes = key
    }

    /// The key from the environment, nil when none is configured.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws(FlotillaError) -> ManifestSignature? {
        if let path = environment["FLOTILLA_MANIFEST_KEY_FILE"], !path.isEmpty {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw FlotillaError(.invalidConfiguration, "FLOTILLA_MANIFEST_KEY_FILE: cannot read \(path)")
            }
            // A trailing newline (echo KEY > file) is not part of the key.
            let key = Array(data.reversed().drop { $0 == 0x0A || $0 == 0x0D }.reversed())
            guard key.count >= 16 else { throw FlotillaError(.invalidConfiguration, "the manifest key in \(path) is shorter than 16 bytes") }
            return ManifestSignature(key: key)
        }
        if let text = environment["FLOTILLA_MANIFEST_KEY"], !text.isEmpty {
            guard text.utf8.count >= 16 else { throw FlotillaError(.invalidConfiguration, "FLOTILLA_MANIFEST_KEY is shorter than 16 bytes") }
            return ManifestSignature(key: Array(text.utf8))
        }
        return nil
    }

    /// What is signed: the job id and its config as canonical JSON (sorted keys). Status,
    /// summary and times change as the job runs and carry no code or inputs.
    static func signedBytes(_ manifest: JobManifest) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data(manifest.job.utf8)
        data.append(0)
        data.append((try? encoder.encode(manifest.config)) ?? Data())
        return data
    }

    /// `manifest` with its signature set.
    public func sign(_ manifest: JobManifest) -> JobManifest {
        var signed = manifest
        let code = HMAC<SHA256>.authenticationCode(for: Self.signedBytes(manifest), using: key)
        signed.signature = Self.prefix + code.map { String(format: "%02x", $0) }.joined()
        return signed
    }

    /// Why `manifest` is not signed with this key, nil when it is (constant-time comparison).
    public func problem(with manifest: JobManifest) -> String? {
        guard let signature = manifest.signature else {
            return "the manifest of job '\(manifest.job)' is not signed, and this process holds a manifest key"
        }
        guard signature.hasPrefix(Self.prefix), let code = Self.bytes(hex: signature.dropFirst(Self.prefix.count)) else {
            return "the manifest of job '\(manifest.job)' has a malformed signature"
        }
        guard HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: Self.signedBytes(manifest), using: key) else {
            return "the manifest of job '\(manifest.job)' has a signature that does not match this key: it was changed, or signed with another key"
        }
        return nil
    }

    private static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        return bytes
    }
}

extension JobConfig {
    /// Why a shard record's source may not be read by this job's workers, nil when it may: files
    /// and URLs must be inputs the job declares (a forged record must not make a worker read
    /// `/etc/passwd` or an internal URL); inline samples carry their own data.
    public func problem(with source: ShardSource) -> String? {
        guard case .lines(let lines) = source else { return nil }
        if inputs.contains(where: { $0.location == lines.location }) { return nil }
        let named = switch lines.location {
        case .file(let path): "file \(path.prefix(200))"
        case .url(let url): "URL \(url.prefix(200))"
        }
        return "source not declared by the job: \(named) is none of its inputs"
    }
}
