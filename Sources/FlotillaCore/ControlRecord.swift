/// A command on `<p>.<job>.control`, keyed by its target: a worker id, or `*` for every worker.
/// Written by the controller (and `flotilla cancel` / `flotilla scale`); read by workers.
public struct ControlRecord: FlotillaRecord, Hashable {
    public static let recordType = "control"
    public static let recordName = "control record"

    /// The target meaning every worker.
    public static let allWorkers = "*"
    /// The `reason` of a `take` from the warm start (ordinary work, queued last), as opposed to
    /// the express lane for recovered shards (run next, one slot beyond the rest).
    public static let warmStartReason = "warm start"
    /// The target meaning the controller (`scale`).
    public static let controller = "controller"

    public var job: String
    /// A worker id, `*` (all workers) or `controller`.
    public var target: String
    public var command: ControlCommand
    /// The shard a shard command (`abandon`, `supersede`) is about.
    public var shard: String?
    /// For `abandon`: the attempt to stop. For `supersede`: attempts below this one are stale.
    public var attempt: Int?
    /// For `scale`: the wanted number of workers.
    public var workers: Int?
    /// For `take`: where the shard record is (shards-topic partition and offset).
    public var partition: Int?
    public var offset: Int64?
    /// Why, for logs ("worker-lost", "cancelled by user").
    public var reason: String?
    /// When it was sent (epoch ms).
    public var time: Int64

    public init(
        job: String, target: String, command: ControlCommand, shard: String? = nil, attempt: Int? = nil,
        workers: Int? = nil, partition: Int? = nil, offset: Int64? = nil, reason: String? = nil, time: Int64 = Timestamp.now()
    ) {
        self.partition = partition
        self.offset = offset
        self.job = job
        self.target = target
        self.command = command
        self.shard = shard
        self.attempt = attempt
        self.workers = workers
        self.reason = reason
        self.time = time
    }

    /// Whether a worker with id `worker` should act on this record.
    public func applies(to worker: String) -> Bool {
        target == Self.allWorkers || target == worker
    }
}

/// What a control record asks for.
public enum ControlCommand: String, Sendable, Hashable, Codable, CaseIterable {
    /// Finish in-flight shards, take no new ones, commit, exit 0.
    case drain
    /// Exit now; in-flight shards are abandoned (not acked) and re-enqueued by the controller.
    case stop
    /// The job is cancelled: stop all work for it and exit.
    case cancel
    /// Stop executing `shard` at `attempt` (if running) without acking it; it was re-enqueued.
    case abandon
    /// Attempts of `shard` below `attempt` are stale: drop them from the queue and skip them.
    case supersede
    /// Fetch the shard record at (`partition`, `offset`) of the shards topic now and run it next:
    /// the express lane for re-enqueued shards, which would otherwise wait behind the backlog of
    /// the partition they were published to. The record stays in Kafka as the durable copy.
    case take
    /// To the controller: run `workers` workers (clamped to workers.min...workers.max); without
    /// `workers`, let the autoscaler choose.
    case scale
    /// To the controller of an open job: end the job once every shard published before this is done.
    case close
    /// Commit one settle transaction now (`SettleRecord`): the controller saw the acks topic held
    /// by a transaction the broker did not resolve.
    case settle
}
