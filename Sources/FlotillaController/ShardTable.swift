import FlotillaCore

/// The ledger's shards by id, with what its walks need kept up to date on every write: the ids
/// not finished yet (in id order), the ids not settled yet, and totals over every entry.
///
/// The ledger's rules and its status snapshot then cost what is still open, not the whole job: a
/// job of 20 000 shards spent 36 ms per tick walking (and sorting) them all, four ticks a second
/// whatever the fleet did (`controller-capacity`, measured).
struct ShardTable: Sendable {
    private(set) var entries: [String: ShardEntry] = [:]
    /// Ids of entries neither done nor dead.
    private(set) var open: Set<String> = []
    /// Ids of entries without a winning ack or a dead letter (a committed shard is done but not
    /// settled until its ack is read).
    private(set) var unsettled: Set<String> = []
    private(set) var totals = Totals()
    /// `open` in id order, with ids finished since left in until there are as many of those as
    /// open ones (a walk skips them): finishing a shard costs no array shift.
    private var order: [String] = []

    /// Sums over every entry.
    struct Totals: Sendable, Hashable {
        /// Samples and error results of done shards (`ShardEntry.doneSamples`).
        var doneSamples = 0
        var errorSamples = 0
        /// Done acks beyond the first per shard.
        var duplicates = 0
        /// Done shards (acked or committed), and dead ones that are not done.
        var done = 0
        var dead = 0
        /// Shards with a winning ack, and dead ones without.
        var won = 0
        var deadUnwon = 0
        /// Re-enqueued attempts (attempt > 0) by reason.
        var reEnqueues: [ShardReason: Int] = [:]
    }

    subscript(id: String) -> ShardEntry? {
        get { entries[id] }
        set { update(id, newValue) }
    }

    var count: Int { entries.count }
    var values: Dictionary<String, ShardEntry>.Values { entries.values }
    var keys: Dictionary<String, ShardEntry>.Keys { entries.keys }

    /// The open ids in id order.
    var openIDs: [String] {
        order.filter { open.contains($0) }
    }

    /// The open entries, in no particular order.
    var openEntries: some Sequence<ShardEntry> {
        open.lazy.compactMap { entries[$0] }
    }

    private mutating func update(_ id: String, _ new: ShardEntry?) {
        let old = entries[id]
        if let old { count(old, sign: -1) }
        if let new { count(new, sign: 1) }
        entries[id] = new
        let isOpen = new.map { !$0.isFinished } ?? false
        if isOpen, open.insert(id).inserted {
            if let last = order.last, last > id {
                order.insert(id, at: order.partitioningIndex { $0 > id })
            } else {
                order.append(id)
            }
        } else if !isOpen, open.remove(id) != nil, order.count > 2 * open.count + 64 {
            order.removeAll { !open.contains($0) }
        }
        if new.map({ !$0.isSettled }) ?? false { unsettled.insert(id) } else { unsettled.remove(id) }
    }

    private mutating func count(_ entry: ShardEntry, sign: Int) {
        let done = entry.doneSamples
        totals.doneSamples += sign * done.samples
        totals.errorSamples += sign * done.errors
        totals.duplicates += sign * max(0, entry.doneRuns.count - 1)
        if entry.isDone { totals.done += sign } else if entry.dead != nil { totals.dead += sign }
        if entry.winner != nil { totals.won += sign } else if entry.dead != nil { totals.deadUnwon += sign }
        for (attempt, info) in entry.attempts where attempt > 0 { totals.reEnqueues[info.reason, default: 0] += sign }
    }
}

extension ShardTable: Hashable {
    /// Equal entries: the rest is derived from them.
    static func == (lhs: ShardTable, rhs: ShardTable) -> Bool { lhs.entries == rhs.entries }
    func hash(into hasher: inout Hasher) { hasher.combine(entries) }
}

extension Array {
    /// The index of the first element for which `belongs` holds, in an array where every element
    /// that does follows every one that does not (binary search).
    func partitioningIndex(where belongs: (Element) -> Bool) -> Int {
        var low = startIndex, high = endIndex
        while low < high {
            let middle = low + (high - low) / 2
            if belongs(self[middle]) { high = middle } else { low = middle + 1 }
        }
        return low
    }
}
