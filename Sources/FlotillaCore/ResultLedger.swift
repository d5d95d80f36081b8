/// The exactly-once reader rule as code (docs/PROTOCOL.md, "Reading results exactly once").
///
/// Feed it ack records in topic order and result records in any order relative to the acks. Per
/// shard, the first ack with status `done` wins; a result counts only if its (`shard`, `attempt`,
/// `run`) matches the winner, and only once per sample id within the shard. Results that arrive
/// before their shard's winner is known are held until it is; results of other executions
/// (speculative copies, replays, zombies) are discarded. Pure: no I/O, no clock.
public struct ResultLedger: Sendable {
    /// Counters of what the ledger did with its input.
    public struct Stats: Sendable, Hashable {
        /// Results handed out (exactly one per sample id and shard).
        public var accepted = 0
        /// Results of an execution other than the winner.
        public var discardedOtherRun = 0
        /// Results of the winning execution whose sample id was already handed out.
        public var discardedDuplicate = 0
        /// Done acks after the first for the same shard (duplicate executions).
        public var duplicateAcks = 0
        /// Acks with status `failed` (they never win).
        public var failedAcks = 0
    }

    private var winners: [String: AckRecord] = [:]
    /// Results of shards without a winner yet, in arrival order.
    private var held: [String: [ResultRecord]] = [:]
    private var heldCount = 0
    /// Sample ids handed out, per shard.
    private var emitted: [String: Set<String>] = [:]
    public private(set) var stats = Stats()

    public init() {}

    /// Feeds one ack, in the order acks appear on the acks topic. Returns the held results it
    /// releases (those of its execution, when it is the shard's first done ack).
    public mutating func add(ack: AckRecord) -> [ResultRecord] {
        guard ack.status == .done else {
            stats.failedAcks += 1
            return []
        }
        guard winners[ack.shard] == nil else {
            stats.duplicateAcks += 1
            return []
        }
        winners[ack.shard] = ack
        guard let waiting = held.removeValue(forKey: ack.shard) else { return [] }
        heldCount -= waiting.count
        var released: [ResultRecord] = []
        for result in waiting {
            if let accepted = admit(result, winner: ack) { released.append(accepted) }
        }
        return released
    }

    /// Feeds one result. Returns it when it counts now; nil when it is held (no winner yet) or
    /// discarded (another execution, or a sample id already handed out).
    public mutating func add(result: ResultRecord) -> ResultRecord? {
        guard let winner = winners[result.shard] else {
            held[result.shard, default: []].append(result)
            heldCount += 1
            return nil
        }
        return admit(result, winner: winner)
    }

    private mutating func admit(_ result: ResultRecord, winner: AckRecord) -> ResultRecord? {
        guard result.attempt == winner.attempt, result.run == winner.run else {
            stats.discardedOtherRun += 1
            return nil
        }
        guard emitted[result.shard, default: []].insert(result.id).inserted else {
            stats.discardedDuplicate += 1
            return nil
        }
        stats.accepted += 1
        return result
    }

    /// The winning (first done) ack of `shard`, if any.
    public func winner(of shard: String) -> AckRecord? { winners[shard] }

    /// Shards with a winning ack.
    public var doneShards: Int { winners.count }

    /// Results held because their shard has no done ack yet.
    public var heldResults: Int { heldCount }

    /// Results handed out for `shard`.
    public func acceptedCount(of shard: String) -> Int { emitted[shard]?.count ?? 0 }

    /// Whether every sample of the winning execution of `shard` has been handed out
    /// (its ack's `samples`). False when the shard has no winner.
    public func isComplete(_ shard: String) -> Bool {
        guard let winner = winners[shard] else { return false }
        return acceptedCount(of: shard) >= winner.samples
    }

    /// Shards with a winner but fewer results handed out than its ack counts, sorted.
    /// A reader that has consumed both topics to their end should find none.
    public var incompleteShards: [String] {
        winners.keys.filter { !isComplete($0) }.sorted()
    }

    /// Applies the rule to complete lists: acks in topic order, results in any order.
    /// Returns the results that count, in the order they were (or would have been) handed out.
    public static func select(acks: [AckRecord], results: [ResultRecord]) -> [ResultRecord] {
        var ledger = ResultLedger()
        var selected: [ResultRecord] = []
        for ack in acks { selected += ledger.add(ack: ack) }
        for result in results {
            if let accepted = ledger.add(result: result) { selected.append(accepted) }
        }
        return selected
    }
}
