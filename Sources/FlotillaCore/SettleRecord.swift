/// A no-op record a worker commits alone on `<p>.<job>.acks`, keyed by its worker id, so that
/// transactions the broker left unresolved get resolved. Readers of the acks topic skip it (by its
/// `flotilla-type` header, `settle`).
///
/// Why: Tansu 0.6 resolves a committed or aborted transaction only when every transaction that
/// overlaps it on a partition is prepared too; when two resolutions race, it can leave a resolved
/// transaction still holding its offset range, which then blocks the last stable offset of the
/// acks and results partitions for every reader (docs/RELIABILITY.md, "held acks"). The producer's
/// next transaction clears that range, so a worker commits one more when it goes idle after
/// publishing, and when the controller asks for it (control `settle`).
public struct SettleRecord: FlotillaRecord, Hashable {
    public static let recordType = "settle"
    public static let recordName = "settle record"

    public var job: String
    public var worker: String
    /// Why: "idle" or "asked by the controller".
    public var reason: String
    /// When it was sent (epoch ms).
    public var time: Int64

    public init(job: String, worker: String, reason: String, time: Int64 = Timestamp.now()) {
        self.job = job
        self.worker = worker
        self.reason = reason
        self.time = time
    }
}
