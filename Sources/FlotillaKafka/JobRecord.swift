import FlotillaCore

/// A record of one of a job's topics, decoded: the one decode path every reader of a job's
/// topics shares (by the topic it came from, its key and its `flotilla-type` header).
public enum JobRecord: Sendable {
    /// A manifest on `<p>.jobs`: this job's or another's (the key and `job` say whose).
    case manifest(JobManifest)
    case shard(ShardRecord)
    case control(ControlRecord)
    case ack(AckRecord)
    /// A settle record on the acks topic: it only ends a transaction, readers skip it.
    case settle(SettleRecord)
    case heartbeat(HeartbeatRecord)
    case controllerHeartbeat(ControllerHeartbeat)
    case deadLetter(DeadLetterRecord)
    /// The per-sample results of one results record (a batch, or a single result).
    case results([ResultRecord])
}

extension TopicRecord {
    /// Decodes this record of one of `topics`' topics; nil for a topic that is not the job's.
    public func jobRecord(in topics: TopicNames) throws(FlotillaError) -> JobRecord? {
        switch topic {
        case topics.jobs: return .manifest(try decode(JobManifest.self))
        case topics.shards: return .shard(try decode(ShardRecord.self))
        case topics.control: return .control(try decode(ControlRecord.self))
        case topics.acks where isSettle: return .settle(try decode(SettleRecord.self))
        case topics.acks: return .ack(try decode(AckRecord.self))
        case topics.heartbeats where key == ControllerHeartbeat.key || recordType == ControllerHeartbeat.recordType:
            return .controllerHeartbeat(try decode(ControllerHeartbeat.self))
        case topics.heartbeats: return .heartbeat(try decode(HeartbeatRecord.self))
        case topics.dlq: return .deadLetter(try decode(DeadLetterRecord.self))
        case topics.results: return .results(try RecordCodec.shared.decodeResults(from: value, type: recordType))
        default: return nil
        }
    }
}
