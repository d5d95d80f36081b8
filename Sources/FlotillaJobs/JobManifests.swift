import FlotillaCore
import Logging
import RdKafka

/// Collects the latest manifest of one job from the compacted `<p>.jobs` topic: the last record
/// keyed by the job id, as compaction would keep it.
struct ManifestCollector {
    let job: String
    let topics: TopicNames
    private(set) var latest: JobManifest?

    init(topics: TopicNames) {
        self.job = topics.job
        self.topics = topics
    }

    /// Feeds one record of any topic; only the job's records on the jobs topic count.
    mutating func add(_ message: KafkaMessage, problems: inout Int) {
        guard message.topic == topics.jobs, message.keyString == job,
              let manifest = message.decode(JobManifest.self, problems: &problems), manifest.job == job else { return }
        latest = manifest
    }

    /// The latest manifest, or an error naming the job and topic when there is none.
    func require(at bootstrapServers: String) throws(FlotillaError) -> JobManifest {
        guard let latest else {
            throw FlotillaError(
                .invalidInput,
                "no job '\(job)' on \(topics.jobs) at \(bootstrapServers); check the job id, --brokers and --prefix")
        }
        return latest
    }
}
