@testable import FlotillaController
import FlotillaCore
import FlotillaTestSupport
import Testing

/// The shard table's derived views (open ids in order, unsettled ids, totals) always equal what a
/// walk over every entry gives, whatever order entries are written and rewritten in.
@Suite("ShardTable")
struct ShardTableTests {
    @Test("after 5 000 random writes the open ids, unsettled ids and totals match a full walk")
    func derivedViewsMatchAFullWalk() {
        var generator = SplitMix(seed: 7)
        var table = ShardTable()
        for step in 0..<5_000 {
            let id = ShardRecord.shardID(index: Int(generator.next() % 300))
            var entry = table[id] ?? ShardEntry(id: id)
            switch generator.next() % 6 {
            case 0:
                let attempt = Int(generator.next() % 3)
                entry.attempts[attempt] = AttemptInfo(reason: attempt == 0 ? .initial : [.stolen, .workerLost, .retry][Int(generator.next() % 3)],
                                                      partition: 0, offset: Int64(step), publishedAt: Int64(step))
            case 1:
                let run = "r\(generator.next() % 3)"
                entry.doneRuns.insert(run)
                if entry.winner == nil {
                    entry.winner = AckRecord(job: "j", shard: id, attempt: 0, run: run, worker: "w", samples: 5,
                                             errorSamples: Int(generator.next() % 2), startedAt: 0)
                }
            case 2:
                entry.committedRuns["c\(generator.next() % 2)"] = CommittedShard(shard: id, attempt: 0, run: "c", samples: 4, errorSamples: 1)
                entry.committedAt = entry.committedAt ?? Int64(step)
            case 3:
                entry.dead = entry.dead ?? "poison"
            case 4:
                entry.executions["e\(step)"] = Execution(worker: "w", attempt: 0, done: 0, total: 5, startedAt: 0, firstSeen: 0, lastProgressAt: 0)
            default:
                entry.executions = [:]
            }
            table[id] = entry
        }
        let all = Array(table.values)
        #expect(table.openIDs == all.filter { !$0.isFinished }.map(\.id).sorted())
        #expect(table.unsettled == Set(all.filter { !$0.isSettled }.map(\.id)))
        #expect(Set(table.openEntries.map(\.id)) == Set(table.openIDs))
        #expect(table.totals.doneSamples == all.reduce(0) { $0 + $1.doneSamples.samples })
        #expect(table.totals.errorSamples == all.reduce(0) { $0 + $1.doneSamples.errors })
        #expect(table.totals.duplicates == all.reduce(0) { $0 + max(0, $1.doneRuns.count - 1) })
        #expect(table.totals.done == all.filter(\.isDone).count)
        #expect(table.totals.dead == all.filter { !$0.isDone && $0.dead != nil }.count)
        #expect(table.totals.won == all.filter { $0.winner != nil }.count)
        #expect(table.totals.deadUnwon == all.filter { $0.winner == nil && $0.dead != nil }.count)
        var reasons: [ShardReason: Int] = [:]
        for entry in all { for (attempt, info) in entry.attempts where attempt > 0 { reasons[info.reason, default: 0] += 1 } }
        #expect(table.totals.reEnqueues.filter { $0.value > 0 } == reasons)
    }

    @Test("ids arriving out of order stay in id order; finished ids leave the walk")
    func order() {
        var table = ShardTable()
        for index in [5, 1, 9, 3, 7] { table[ShardRecord.shardID(index: index)] = ShardEntry(id: ShardRecord.shardID(index: index)) }
        #expect(table.openIDs == [1, 3, 5, 7, 9].map(ShardRecord.shardID(index:)))
        var done = table[ShardRecord.shardID(index: 3)]!
        done.dead = "gone"
        table[done.id] = done
        #expect(table.openIDs == [1, 5, 7, 9].map(ShardRecord.shardID(index:)))
        #expect(table.count == 5)
    }
}
