/// One execution's results as they travel: each sample's entry of a `results` record
/// (`{"id":…,"output":…}`, or `{"error":…,"id":…,"stage":…}`) written once, as it is made, into one
/// buffer between commas, the output spliced in as the bytes the model wrote. Publishing wraps runs
/// of entries in the fields a record holds once (`packed`, `writeJSON`): no per-sample value is
/// built, copied or freed on the way. Building a `ResultRecord` per sample and writing it later
/// was a sixth of a fast model's worker CPU, most of it reference counting (docs/BENCHMARKS.md).
///
/// Written as a `results` record it is a ``ResultBatch``; readers decode it as one.
public struct ResultEntries: Sendable, Hashable {
    public let job: String
    public let shard: String
    public let attempt: Int
    /// The run id of the execution that produced these results (the same as its ack's).
    public let run: String
    /// The entries' JSON, separated by commas: what a record's `results` array holds.
    public private(set) var bytes: [UInt8] = []
    /// Where each entry ends in `bytes` (the next one starts a comma later).
    public private(set) var ends: [Int] = []
    /// The error messages among the entries, in order (the ack counts the commonest).
    public private(set) var errors: [String] = []

    /// Empty entries with room for `capacity` of them taking `bytes` in all.
    public init(job: String, shard: String, attempt: Int, run: String, capacity: Int = 0, bytes: Int = 0) {
        self.job = job
        self.shard = shard
        self.attempt = attempt
        self.run = run
        ends.reserveCapacity(capacity)
        self.bytes.reserveCapacity(bytes)
    }

    public var count: Int { ends.count }
    public var isEmpty: Bool { ends.isEmpty }

    /// Appends an output entry; returns its size in bytes.
    @discardableResult
    public mutating func appendOutput(id: String, _ output: ArraySlice<UInt8>) -> Int {
        if !ends.isEmpty { bytes.append(UInt8(ascii: ",")) }
        let start = bytes.count
        JSONWriter.member(#"{"id":"#, id, into: &bytes)
        JSONWriter.raw(#","output":"#, into: &bytes)
        bytes.append(contentsOf: output)
        bytes.append(UInt8(ascii: "}"))
        ends.append(bytes.count)
        return bytes.count - start
    }

    /// Appends an error entry (`stage`: the stage that failed, nil before the first).
    public mutating func appendError(id: String, message: String, stage: String?) {
        if !ends.isEmpty { bytes.append(UInt8(ascii: ",")) }
        JSONWriter.member(#"{"error":"#, message, into: &bytes)
        JSONWriter.member(#","id":"#, id, into: &bytes)
        if let stage { JSONWriter.member(#","stage":"#, stage, into: &bytes) }
        bytes.append(UInt8(ascii: "}"))
        ends.append(bytes.count)
        errors.append(message)
    }

    /// Takes back the last entry (an output found too large for a record, to be replaced by an
    /// error), and the comma before it.
    public mutating func removeLastOutput() {
        ends.removeLast()
        bytes.removeSubrange((ends.last ?? 0)...)
    }

    /// The error in place of an output whose record would take `size` bytes, over the limit.
    public static func oversizedMessage(size: Int, maxMessageBytes: Int) -> String {
        "the result is about \(size) bytes, over the \(maxMessageBytes)-byte record limit (kafka.maxMessageBytes); make the output smaller or raise the limit"
    }

    /// No entries left (a shard whose results the broker refused is acked failed, without them).
    public mutating func removeAll() {
        bytes.removeAll()
        ends.removeAll()
        errors.removeAll()
    }

    /// Entry `index`'s JSON.
    public func entry(_ index: Int) -> ArraySlice<UInt8> {
        bytes[(index == 0 ? 0 : ends[index - 1] + 1)..<ends[index]]
    }

    /// The per-sample records, read back from the entries (outputs keep their bytes): for the rare
    /// paths (output files, tests).
    public var records: [ResultRecord] {
        ends.indices.map { index in
            let entry = entry(index)
            var id = "", message: String?, stage: String?, output: Range<Int>?
            let read = entry.withUnsafeBufferPointer { buffer in
                var scanner = JSONScanner(buffer)
                return scanner.forEachMember { scanner, key in
                    if key.matches("output") {
                        output = scanner.skipValueRange()
                        return output != nil
                    }
                    guard let text = scanner.string() else { return false }
                    if key.matches("id") { id = text } else if key.matches("error") { message = text } else { stage = text }
                    return true
                }
            }
            precondition(read, "result entries hold the entries they wrote")
            let outcome: ResultRecord.Outcome = if let message { .error(message) } else {
                .output(JSONBytes(trusted: Array(entry[(entry.startIndex + output!.lowerBound)..<(entry.startIndex + output!.upperBound)])))
            }
            return ResultRecord(job: job, id: id, shard: shard, attempt: attempt, run: run, outcome: outcome, stage: stage)
        }
    }

    /// About how many bytes a record of these results takes beyond its entries: the fields it
    /// holds once, its key (the shard id) and Kafka's framing. With an entry's size, the one
    /// estimate behind both packing and the oversized-result check.
    public var overheadBytes: Int {
        ResultBatch.framingBytes + 96 + 2 * shard.utf8.count + job.utf8.count + run.utf8.count
    }

    /// Cut into runs whose records stay within `maxMessageBytes`. An entry too large for a record
    /// of its own must have been replaced by an error first; it then travels alone.
    public func packed(maxMessageBytes: Int) -> [ResultEntries] {
        let budget = maxMessageBytes - overheadBytes
        // The usual case, all in one record: these entries themselves, not a copy.
        guard bytes.count > budget else { return isEmpty ? [] : [self] }
        var runs: [ResultEntries] = []
        var current = ResultEntries(job: job, shard: shard, attempt: attempt, run: run)
        var errorIndex = 0
        for index in ends.indices {
            let entry = entry(index)
            if !current.isEmpty, current.bytes.count + 1 + entry.count > budget {
                runs.append(current)
                current = ResultEntries(job: job, shard: shard, attempt: attempt, run: run)
            }
            if !current.isEmpty { current.bytes.append(UInt8(ascii: ",")) }
            current.bytes.append(contentsOf: entry)
            current.ends.append(current.bytes.count)
            if entry.starts(with: #"{"error":"#.utf8) {
                current.errors.append(errors[errorIndex])
                errorIndex += 1
            }
        }
        runs.append(current)
        return runs
    }

    /// The commonest error messages, for an ack (at most 3).
    public var topErrors: [ErrorCount] {
        ErrorCount.top(errors.lazy.map { ($0, 1) }, limit: 3)
    }
}

extension ResultEntries: FlotillaRecord, JSONWritableRecord {
    public static let recordType = ResultBatch.recordType
    public static let recordName = ResultBatch.recordName

    public var problem: String? { ResultBatch.problem(shard: shard, isEmpty: isEmpty) }

    public init(from decoder: any Decoder) throws {
        self = try ResultBatch(from: decoder).entries
    }

    public func encode(to encoder: any Encoder) throws {
        try ResultBatch(job: job, shard: shard, attempt: attempt, run: run, results: records).encode(to: encoder)
    }

    public var estimatedJSONSize: Int {
        96 + job.utf8.count + shard.utf8.count + run.utf8.count + bytes.count
    }

    /// The object a ``ResultBatch`` is (sorted keys, `"v"`), the entries spliced in.
    public func writeJSON(into out: inout [UInt8]) {
        JSONWriter.member(#"{"attempt":"#, attempt, into: &out)
        JSONWriter.member(#","job":"#, job, into: &out)
        JSONWriter.raw(#","results":["#, into: &out)
        out.append(contentsOf: bytes)
        JSONWriter.member(#"],"run":"#, run, into: &out)
        JSONWriter.member(#","shard":"#, shard, into: &out)
        JSONWriter.member(#","v":"#, RecordCodec.version, into: &out)
        out.append(UInt8(ascii: "}"))
    }
}
