import FlotillaCore
import Logging
import RdKafka

/// Finds a job's latest manifest in `<prefix>.jobs`.
enum ManifestLoader {
    static func load(job: String, prefix: String, client: KafkaClientConfiguration, logger: Logger) async throws(FlotillaError) -> JobManifest {
        let topics = TopicNames(prefix: prefix, job: job)
        do {
            // Manifests are never written in transactions, and a read_committed reader took ~1 s
            // to reach the end of this topic on the embedded broker (read_uncommitted: 0.06 s).
            let reader = try await TopicReader(client: client, topics: [topics.jobs], isolation: .readUncommitted,
                                               fetchWait: .milliseconds(10), logger: logger)
            defer { Task { await reader.close() } }
            var latest: JobManifest?
            for message in try await reader.readToEnd() where message.keyString == job {
                if let manifest = try? RecordCodec.shared.decode(JobManifest.self, from: message.value) { latest = manifest }
            }
            guard let latest else {
                throw FlotillaError(.invalidConfiguration, "no job '\(job)' in \(topics.jobs) at \(client.bootstrapServers); submit it first")
            }
            return latest
        } catch let error as FlotillaError {
            throw error
        } catch {
            throw FlotillaError(.kafka, "cannot read the manifest of job '\(job)'", underlying: error)
        }
    }
}
