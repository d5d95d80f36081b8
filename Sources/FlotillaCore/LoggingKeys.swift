/// Metadata keys shared by every Flotilla log line.
public enum LoggingKeys {
    /// The job id.
    public static let job = "flotilla.job"
    /// The shard id ("s000042").
    public static let shard = "flotilla.shard"
    /// The worker id.
    public static let worker = "flotilla.worker"
}
