/// The results of one execution of a shard, several samples per record, on `<p>.<job>.results`
/// (type `results`, keyed by shard id). One Kafka record per chunk of a shard instead of one per
/// sample: per-record costs (a produce entry, headers, the broker's bookkeeping) were a third of
/// the worker's CPU per sample and most of the broker's on a fast model (docs/BENCHMARKS.md).
///
/// Readers turn it back into the per-sample `ResultRecord`s that the reader rule counts
/// (`RecordCodec.decodeResults`); a single `result` record from an older worker reads the same way.
public struct ResultBatch: FlotillaRecord, Hashable {
    public static let recordType = "results"
    public static let recordName = "result batch record"

    public var job: String
    public var shard: String
    public var attempt: Int
    /// The run id of the execution that produced these results (the same as its ack's).
    public var run: String
    /// The samples' results, in shard order; each has this batch's job, shard, attempt and run.
    public var results: [ResultRecord]

    /// A batch of `results`, which must be non-empty and all of one execution.
    public init(_ results: some Collection<ResultRecord>) {
        guard let first = results.first else { preconditionFailure("a result batch holds at least one result") }
        job = first.job
        shard = first.shard
        attempt = first.attempt
        run = first.run
        self.results = Array(results)
    }

    /// Kafka's framing of one record beyond its JSON and key: headers, record and batch overhead.
    public static let framingBytes = 512

    /// About how many bytes a record of `result`'s execution takes beyond its entries: the fields
    /// it holds once, its key (the shard id) and Kafka's framing. With `entryJSONSize`, the one
    /// estimate behind both packing and the oversized-result check.
    public static func overheadBytes(of result: ResultRecord) -> Int {
        framingBytes + 96 + 2 * result.shard.utf8.count + result.job.utf8.count + result.run.utf8.count
    }

    /// `results` (one execution's) cut into batches whose records stay within `maxMessageBytes`.
    /// A result too large for a record of its own must have been replaced by an error first
    /// (`ResultRecord.oversized`); it then travels alone.
    public static func pack(_ results: [ResultRecord], maxMessageBytes: Int) -> [ResultBatch] {
        guard let first = results.first else { return [] }
        let budget = maxMessageBytes - overheadBytes(of: first)
        var batches: [ResultBatch] = []
        var start = results.startIndex
        var size = 0
        for index in results.indices {
            let entry = results[index].entryJSONSize
            if index > start, size + entry > budget {
                batches.append(ResultBatch(results[start..<index]))
                start = index
                size = 0
            }
            size += entry
        }
        // The usual case, all in one record: the array itself, not a copy of every result in it.
        batches.append(start == results.startIndex ? ResultBatch(results) : ResultBatch(results[start...]))
        return batches
    }

    public var problem: String? {
        if let problem = ShardRecord.shardIDProblem(shard) { return problem }
        return results.isEmpty ? "field 'results' is empty (expected at least one result)" : nil
    }

    private enum CodingKeys: String, CodingKey { case job, shard, attempt, run, results }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        job = try container.decode(String.self, forKey: .job)
        shard = try container.decode(String.self, forKey: .shard)
        attempt = try container.decode(Int.self, forKey: .attempt)
        run = try container.decode(String.self, forKey: .run)
        let entries = try container.decode([Entry].self, forKey: .results)
        results = entries.map { [job, shard, attempt, run] entry in
            ResultRecord(job: job, id: entry.id, shard: shard, attempt: attempt, run: run, outcome: entry.outcome, stage: entry.stage)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(job, forKey: .job)
        try container.encode(shard, forKey: .shard)
        try container.encode(attempt, forKey: .attempt)
        try container.encode(run, forKey: .run)
        try container.encode(results.map { Entry(id: $0.id, outcome: $0.outcome, stage: $0.stage) }, forKey: .results)
    }

    /// One sample in the `results` list: `id`, exactly one of `output` and `error`, and `stage` for errors.
    private struct Entry: Codable {
        var id: String
        var outcome: ResultRecord.Outcome
        var stage: String?

        init(id: String, outcome: ResultRecord.Outcome, stage: String?) {
            self.id = id
            self.outcome = outcome
            self.stage = stage
        }

        private enum CodingKeys: String, CodingKey { case id, output, error, stage }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = try container.decode(String.self, forKey: .id)
            stage = try container.decodeIfPresent(String.self, forKey: .stage)
            outcome = try ResultRecord.Outcome(container, output: .output, error: .error)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try outcome.encode(into: &container, output: .output, error: .error)
            try container.encodeIfPresent(stage, forKey: .stage)
        }
    }
}

extension ResultBatch: JSONWritableRecord {
    public var estimatedJSONSize: Int {
        96 + job.utf8.count + shard.utf8.count + run.utf8.count + results.reduce(0) { $0 + $1.entryJSONSize }
    }

    /// The same object `Codable` writes (sorted keys, `"v"`), outputs spliced in as bytes.
    public func writeJSON(into out: inout [UInt8]) {
        JSONWriter.member(#"{"attempt":"#, attempt, into: &out)
        JSONWriter.member(#","job":"#, job, into: &out)
        JSONWriter.raw(#","results":["#, into: &out)
        // Through the buffer: by index or `enumerated()`, each result was copied out (5 retains).
        results.withUnsafeBufferPointer { results in
            for index in results.indices {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                results[index].writeEntryJSON(into: &out)
            }
        }
        JSONWriter.member(#"],"run":"#, run, into: &out)
        JSONWriter.member(#","shard":"#, shard, into: &out)
        JSONWriter.member(#","v":"#, RecordCodec.version, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}

extension ResultRecord {
    /// About how many bytes this result takes as an entry of a batch.
    public var entryJSONSize: Int {
        let outcomeSize = switch outcome {
        case .output(let bytes): bytes.bytes.count
        case .error(let message): Self.errorJSONSize(message)
        }
        return Self.entryJSONSize(id: id, outcomeSize: outcomeSize, stage: stage)
    }

    /// `entryJSONSize` from a result's parts, for a caller that sizes results as it makes them.
    public static func entryJSONSize(id: String, outcomeSize: Int, stage: String?) -> Int {
        32 + outcomeSize + id.utf8.count + (stage?.utf8.count ?? 0)
    }

    /// What an error `message` adds to an entry in place of an output.
    public static func errorJSONSize(_ message: String) -> Int { message.utf8.count + 16 }

    /// `{"error":…,"id":…,"output":…,"stage":…}` (sorted keys; the fields a batch holds once left out).
    func writeEntryJSON(into out: inout [UInt8]) {
        switch outcome {
        case .error(let message):
            JSONWriter.member(#"{"error":"#, message, into: &out)
            JSONWriter.member(#","id":"#, id, into: &out)
        case .output(let bytes):
            JSONWriter.member(#"{"id":"#, id, into: &out)
            JSONWriter.raw(#","output":"#, into: &out)
            out.append(contentsOf: bytes.bytes)
        }
        if let stage {
            JSONWriter.member(#","stage":"#, stage, into: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

extension RecordCodec {
    /// The per-sample results in a record of the results topic: a `results` batch, or a single
    /// `result` record (written by workers before batches). `type` is the record's `flotilla-type`
    /// header; without one, the record's shape decides.
    public func decodeResults(from bytes: [UInt8], type: String?) throws(FlotillaError) -> [ResultRecord] {
        switch type {
        case ResultBatch.recordType: return try decode(ResultBatch.self, from: bytes).results
        case ResultRecord.recordType: return [try decode(ResultRecord.self, from: bytes)]
        case nil:
            if let batch = try? decode(ResultBatch.self, from: bytes) { return batch.results }
            return [try decode(ResultRecord.self, from: bytes)]
        case let other?:
            throw FlotillaError(.codec, "result record: a record of type '\(other)' on the results topic")
        }
    }
}
