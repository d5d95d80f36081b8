/// The completion record of one execution of a shard on `<p>.<job>.acks`, keyed by shard id.
/// Published in the same transaction as the execution's results. A shard is done at its first
/// committed ack with status `done`, and only results of that execution count (`ResultLedger`).
public struct AckRecord: FlotillaRecord, Hashable {
    public static let recordType = "ack"
    public static let recordName = "ack record"

    public var job: String
    public var shard: String
    public var attempt: Int
    /// The execution's run id: a UUID string unique to this execution, also carried by each of
    /// its results. Two workers running the same shard record have different run ids.
    public var run: String
    /// The worker id that ran it.
    public var worker: String
    /// Samples read from the shard (each has a result: an output or an error).
    public var samples: Int
    /// Samples whose result is an error.
    public var errorSamples: Int
    public var status: AckStatus
    /// Why the execution failed (status `failed` only).
    public var error: String?
    /// The most common error messages of its error results, with counts (at most 3; optional).
    public var errors: [ErrorCount]?
    /// Execution start and end (epoch ms).
    public var startedAt: Int64
    public var finishedAt: Int64

    public init(
        job: String, shard: String, attempt: Int, run: String, worker: String, samples: Int,
        errorSamples: Int = 0, status: AckStatus = .done, error: String? = nil, errors: [ErrorCount]? = nil,
        startedAt: Int64, finishedAt: Int64 = Timestamp.now()
    ) {
        self.job = job
        self.shard = shard
        self.attempt = attempt
        self.run = run
        self.worker = worker
        self.samples = samples
        self.errorSamples = errorSamples
        self.status = status
        self.error = error
        self.errors = errors
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}

extension AckRecord {
    public var problem: String? { ShardRecord.shardIDProblem(shard) }
}

/// How an execution of a shard ended.
public enum AckStatus: String, Sendable, Hashable, Codable, CaseIterable {
    /// Every sample has a result (output or error) in the same transaction.
    case done
    /// The shard could not be processed (source unreadable, predictor gone); no results count.
    /// The controller retries it while attempts are left.
    case failed
}

extension AckRecord: JSONWritableRecord {
    public var estimatedJSONSize: Int {
        256 + job.utf8.count + shard.utf8.count + run.utf8.count + worker.utf8.count + (error?.utf8.count ?? 0)
            + (errors ?? []).reduce(0) { $0 + 32 + $1.message.utf8.count }
    }

    /// The object `Codable` writes (sorted keys, `"v"`), without JSONEncoder: one ack per shard
    /// made it a tenth of a worker's CPU on 10-sample shards.
    public func writeJSON(into out: inout [UInt8]) {
        JSONWriter.member(#"{"attempt":"#, attempt, into: &out)
        if let error {
            JSONWriter.member(#","error":"#, error, into: &out)
        }
        JSONWriter.member(#","errorSamples":"#, errorSamples, into: &out)
        if let errors {
            JSONWriter.raw(#","errors":["#, into: &out)
            for (index, count) in errors.enumerated() {
                JSONWriter.raw(index == 0 ? #"{"count":"# : #",{"count":"#, into: &out)
                JSONWriter.write(count.count, into: &out)
                JSONWriter.member(#","message":"#, count.message, into: &out)
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
        JSONWriter.member(#","finishedAt":"#, finishedAt, into: &out)
        JSONWriter.member(#","job":"#, job, into: &out)
        JSONWriter.member(#","run":"#, run, into: &out)
        JSONWriter.member(#","samples":"#, samples, into: &out)
        JSONWriter.member(#","shard":"#, shard, into: &out)
        JSONWriter.member(#","startedAt":"#, startedAt, into: &out)
        JSONWriter.member(#","status":"#, status.rawValue, into: &out)
        JSONWriter.member(#","v":"#, RecordCodec.version, into: &out)
        JSONWriter.member(#","worker":"#, worker, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}
