/// One sample's result on `<p>.<job>.results`, keyed by sample id: the last stage's output, or
/// the error that stopped the sample. Counts for readers only when its (`shard`, `attempt`, `run`)
/// matches the shard's first committed done ack (`ResultLedger`).
public struct ResultRecord: FlotillaRecord, Hashable {
    public static let recordType = "result"
    public static let recordName = "result record"

    public var job: String
    /// The sample id (JSON key `id`).
    public var id: String
    public var shard: String
    public var attempt: Int
    /// The run id of the execution that produced it (the same as its ack's).
    public var run: String
    public var outcome: Outcome
    /// The stage that produced the error (errors only; nil for errors before the first stage,
    /// such as an unreadable line).
    public var stage: String?

    /// A sample's output or error.
    public enum Outcome: Sendable, Hashable {
        /// The last stage's output (any JSON value, null included), as the bytes the model wrote.
        case output(JSONBytes)
        /// Why the sample has no output.
        case error(String)
    }

    public init(job: String, id: String, shard: String, attempt: Int, run: String, outcome: Outcome, stage: String? = nil) {
        self.job = job
        self.id = id
        self.shard = shard
        self.attempt = attempt
        self.run = run
        self.outcome = outcome
        self.stage = stage
    }

    /// The output as a tree, if the sample succeeded.
    public var output: JSONValue? { outputBytes?.value }

    /// The output's bytes, if the sample succeeded.
    public var outputBytes: JSONBytes? {
        if case .output(let bytes) = outcome { return bytes }
        return nil
    }

    /// The error message, if the sample failed.
    public var error: String? {
        if case .error(let message) = outcome { return message }
        return nil
    }

    private enum CodingKeys: String, CodingKey { case job, id, shard, attempt, run, output, error, stage }

    // Exactly one of `output` / `error`; an `output` of null is a real (null) output.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        job = try container.decode(String.self, forKey: .job)
        id = try container.decode(String.self, forKey: .id)
        shard = try container.decode(String.self, forKey: .shard)
        attempt = try container.decode(Int.self, forKey: .attempt)
        run = try container.decode(String.self, forKey: .run)
        stage = try container.decodeIfPresent(String.self, forKey: .stage)
        outcome = try Outcome(container, output: .output, error: .error)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(job, forKey: .job)
        try container.encode(id, forKey: .id)
        try container.encode(shard, forKey: .shard)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(run, forKey: .run)
        try outcome.encode(into: &container, output: .output, error: .error)
        try container.encodeIfPresent(stage, forKey: .stage)
    }
}

extension ResultRecord.Outcome {
    /// Exactly one of `output` / `error`; an `output` of null is a real (null) output.
    init<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, output: Key, error: Key) throws {
        switch (container.contains(output), container.contains(error)) {
        case (true, false):
            self = .output(try container.decode(JSONBytes.self, forKey: output))
        case (false, true):
            self = .error(try container.decode(String.self, forKey: error))
        case (true, true):
            throw DecodingError.dataCorruptedError(
                forKey: error, in: container, debugDescription: "has both output and error; expected exactly one")
        case (false, false):
            throw DecodingError.keyNotFound(output, DecodingError.Context(
                codingPath: container.codingPath, debugDescription: "expected output or error"))
        }
    }

    func encode<Key: CodingKey>(into container: inout KeyedEncodingContainer<Key>, output: Key, error: Key) throws {
        switch self {
        case .output(let value): try container.encode(value, forKey: output)
        case .error(let message): try container.encode(message, forKey: error)
        }
    }
}

extension ResultRecord: JSONWritableRecord {
    public var estimatedJSONSize: Int {
        let outcomeSize = switch outcome {
        case .output(let bytes): bytes.bytes.count
        case .error(let message): message.utf8.count
        }
        return 96 + outcomeSize + id.utf8.count + job.utf8.count + run.utf8.count + shard.utf8.count + (stage?.utf8.count ?? 0)
    }

    /// The same object `Codable` writes (sorted keys, `"v"`), with the output spliced in as bytes:
    /// one result per sample makes this the hottest record.
    public func writeJSON(into out: inout [UInt8]) {
        JSONWriter.member(#"{"attempt":"#, attempt, into: &out)
        // Keys in sorted order: attempt, error, id, job, output, run, shard, stage, v.
        if case .error(let message) = outcome {
            JSONWriter.member(#","error":"#, message, into: &out)
        }
        JSONWriter.member(#","id":"#, id, into: &out)
        JSONWriter.member(#","job":"#, job, into: &out)
        if case .output(let bytes) = outcome {
            JSONWriter.raw(#","output":"#, into: &out)
            out.append(contentsOf: bytes.bytes)
        }
        JSONWriter.member(#","run":"#, run, into: &out)
        JSONWriter.member(#","shard":"#, shard, into: &out)
        if let stage {
            JSONWriter.member(#","stage":"#, stage, into: &out)
        }
        JSONWriter.member(#","v":"#, RecordCodec.version, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}

extension ResultRecord {
    public var problem: String? { ShardRecord.shardIDProblem(shard) }
}
