import ArgumentParser
import FlotillaCore
import Foundation

/// Runs a command body, turning a `FlotillaError` into its message on stderr and the documented
/// exit code (2 bad input or configuration, 1 anything else).
func exitOnFlotillaError(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as FlotillaError {
        FileHandle.standardError.write(Data("flotilla: \(error)\n".utf8))
        throw ExitCode(error.exitCode)
    }
}
