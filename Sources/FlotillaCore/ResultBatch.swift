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
        self.init(job: first.job, shard: first.shard, attempt: first.attempt, run: first.run, results: Array(results))
    }

    /// A batch of one execution's `results` (each should carry these fields).
    public init(job: String, shard: String, attempt: Int, run: String, results: [ResultRecord]) {
        self.job = job
        self.shard = shard
        self.attempt = attempt
        self.run = run
        self.results = results
    }

    /// The results as the entries they are written as.
    public var entries: ResultEntries {
        var entries = ResultEntries(job: job, shard: shard, attempt: attempt, run: run, capacity: results.count)
        for result in results {
            switch result.outcome {
            case .output(let output): entries.appendOutput(id: result.id, output.bytes)
            case .error(let message): entries.appendError(id: result.id, message: message, stage: result.stage)
            }
        }
        return entries
    }

    /// Kafka's framing of one record beyond its JSON and key: headers, record and batch overhead.
    public static let framingBytes = 512

    public var problem: String? { Self.problem(shard: shard, isEmpty: results.isEmpty) }

    /// What makes a results record unusable, whichever type holds it: a bad shard id, no results.
    static func problem(shard: String, isEmpty: Bool) -> String? {
        if let problem = ShardRecord.shardIDProblem(shard) { return problem }
        return isEmpty ? "field 'results' is empty (expected at least one result)" : nil
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
    public var estimatedJSONSize: Int { 96 + job.utf8.count + shard.utf8.count + run.utf8.count + 64 * results.count }

    /// The same object `Codable` writes (sorted keys, `"v"`), outputs spliced in as bytes.
    public func writeJSON(into out: inout [UInt8]) {
        entries.writeJSON(into: &out)
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
