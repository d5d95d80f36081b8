import Testing
@testable import FlotillaCore
import FlotillaTestSupport

private func ack(_ shard: String, attempt: Int = 0, run: String, status: AckStatus = .done, samples: Int = 3) -> AckRecord {
    AckRecord(job: "j", shard: shard, attempt: attempt, run: run, worker: "w-\(run)", samples: samples,
              status: status, error: status == .failed ? "boom" : nil, startedAt: 1, finishedAt: 2)
}

private func result(_ shard: String, _ id: String, attempt: Int = 0, run: String, output: Int64 = 0) -> ResultRecord {
    ResultRecord(job: "j", id: id, shard: shard, attempt: attempt, run: run, outcome: .output(JSONBytes(.int(output))))
}

/// (shard, id, run) of each record, for compact expectations.
private func keys(_ results: [ResultRecord]) -> [String] {
    results.map { "\($0.shard)/\($0.id)@\($0.run)" }
}

@Suite("Result ledger (the exactly-once reader rule)")
struct ResultLedgerTests {
    @Test("results after their ack count once each")
    func simple() {
        var ledger = ResultLedger()
        #expect(ledger.add(ack: ack("s1", run: "a")).isEmpty)
        #expect(ledger.add(result: result("s1", "x", run: "a")) != nil)
        #expect(ledger.add(result: result("s1", "y", run: "a")) != nil)
        #expect(!ledger.isComplete("s1"))
        #expect(ledger.incompleteShards == ["s1"])
        #expect(ledger.add(result: result("s1", "z", run: "a")) != nil)
        #expect(ledger.isComplete("s1"))
        #expect(ledger.incompleteShards.isEmpty)
        #expect(ledger.stats.accepted == 3)
        #expect(ledger.doneShards == 1)
    }

    @Test("results before their ack are held, then released by the winning ack only")
    func resultsBeforeAcks() {
        var ledger = ResultLedger()
        for id in ["x", "y", "z"] {
            #expect(ledger.add(result: result("s1", id, run: "b")) == nil)   // loser, arrives first
            #expect(ledger.add(result: result("s1", id, run: "a")) == nil)   // winner
        }
        #expect(ledger.heldResults == 6)
        let released = ledger.add(ack: ack("s1", run: "a"))
        #expect(keys(released) == ["s1/x@a", "s1/y@a", "s1/z@a"])
        #expect(ledger.heldResults == 0)
        #expect(ledger.stats.discardedOtherRun == 3)
        // The loser's ack comes later in topic order: a duplicate, releasing nothing.
        #expect(ledger.add(ack: ack("s1", run: "b")).isEmpty)
        #expect(ledger.stats.duplicateAcks == 1)
        #expect(ledger.winner(of: "s1")?.run == "a")
    }

    @Test("speculative duplicate runs: the first done ack in topic order wins, whatever the attempt")
    func speculativeRuns() {
        var ledger = ResultLedger()
        // Attempt 1 (a speculative copy) finished first: its ack is first on the topic.
        _ = ledger.add(ack: ack("s1", attempt: 1, run: "spec"))
        _ = ledger.add(ack: ack("s1", attempt: 0, run: "orig"))
        var accepted: [ResultRecord] = []
        for id in ["x", "y", "z"] {
            if let r = ledger.add(result: result("s1", id, attempt: 0, run: "orig")) { accepted.append(r) }
            if let r = ledger.add(result: result("s1", id, attempt: 1, run: "spec")) { accepted.append(r) }
        }
        #expect(keys(accepted) == ["s1/x@spec", "s1/y@spec", "s1/z@spec"])
        #expect(ledger.stats.discardedOtherRun == 3)
    }

    @Test("same shard and attempt on two workers (no fencing): only the winning run id counts")
    func sameAttemptTwoRuns() {
        let results = ["x", "y"].flatMap { id in [result("s1", id, run: "zombie", output: 1), result("s1", id, run: "live", output: 2)] }
        let selected = ResultLedger.select(acks: [ack("s1", run: "live", samples: 2), ack("s1", run: "zombie", samples: 2)], results: results)
        #expect(keys(selected) == ["s1/x@live", "s1/y@live"])
        #expect(selected.allSatisfy { $0.output == .int(2) })
    }

    @Test("late results of a loser are discarded")
    func lateLoserResults() {
        var ledger = ResultLedger()
        _ = ledger.add(ack: ack("s1", run: "a", samples: 1))
        #expect(ledger.add(result: result("s1", "x", run: "a")) != nil)
        // Much later, a stale worker's results (and ack) show up.
        #expect(ledger.add(result: result("s1", "x", run: "b")) == nil)
        #expect(ledger.add(result: result("s1", "new-id", run: "b")) == nil)
        _ = ledger.add(ack: ack("s1", run: "b", samples: 2))
        #expect(ledger.stats.accepted == 1)
        #expect(ledger.stats.discardedOtherRun == 2)
        #expect(ledger.acceptedCount(of: "s1") == 1)
        #expect(ledger.isComplete("s1"))
    }

    @Test("failed acks never win; a later done ack does")
    func failedAcks() {
        var ledger = ResultLedger()
        #expect(ledger.add(result: result("s1", "x", run: "f")) == nil)
        #expect(ledger.add(ack: ack("s1", run: "f", status: .failed)).isEmpty)
        #expect(ledger.winner(of: "s1") == nil)
        #expect(ledger.stats.failedAcks == 1)
        #expect(ledger.add(result: result("s1", "x", attempt: 1, run: "ok")) == nil)
        let released = ledger.add(ack: ack("s1", attempt: 1, run: "ok", samples: 1))
        #expect(keys(released) == ["s1/x@ok"])
        #expect(ledger.stats.discardedOtherRun == 1)
    }

    @Test("a replayed result of the winning run is given once")
    func replayedResults() {
        var ledger = ResultLedger()
        #expect(ledger.add(result: result("s1", "x", run: "a")) == nil)
        #expect(ledger.add(result: result("s1", "x", run: "a")) == nil)
        #expect(keys(ledger.add(ack: ack("s1", run: "a", samples: 1))) == ["s1/x@a"])
        #expect(ledger.add(result: result("s1", "x", run: "a")) == nil)
        #expect(ledger.stats.discardedDuplicate == 2)
        #expect(ledger.stats.accepted == 1)
    }

    @Test("the same sample id in two shards counts in each (ids are unique per shard)")
    func sameIDDifferentShards() {
        let selected = ResultLedger.select(
            acks: [ack("s1", run: "a", samples: 1), ack("s2", run: "b", samples: 1)],
            results: [result("s1", "x", run: "a"), result("s2", "x", run: "b"), result("s3", "x", run: "c")])
        #expect(keys(selected) == ["s1/x@a", "s2/x@b"])
    }

    @Test("many shards, many runs, shuffled: exactly one result per sample, all from winners")
    func shuffledStress() {
        var generator = SplitMix(seed: 42)
        var acks: [AckRecord] = []
        var results: [ResultRecord] = []
        var winners: [String: String] = [:]
        for shardIndex in 0..<200 {
            let shard = ShardRecord.shardID(index: shardIndex)
            let runs = (0..<Int.random(in: 1...3, using: &generator)).map { "\(shard)-run\($0)" }
            for (attempt, run) in runs.enumerated() {
                for sample in 0..<5 { results.append(result(shard, "\(shard):\(sample)", attempt: attempt, run: run)) }
                // Occasionally a run's results are replayed.
                if Bool.random(using: &generator) { results.append(result(shard, "\(shard):0", attempt: attempt, run: run)) }
            }
            // Acks in a random order; the first done one is the winner.
            for run in runs.shuffled(using: &generator) {
                let attempt = runs.firstIndex(of: run)!
                let failed = run != runs.last && Int.random(in: 0..<4, using: &generator) == 0
                acks.append(ack(shard, attempt: attempt, run: run, status: failed ? .failed : .done, samples: 5))
                if !failed && winners[shard] == nil { winners[shard] = run }
            }
        }
        acks.shuffle(using: &generator)  // shards interleave; per-shard order is what matters
        var perShardFirst: [String: String] = [:]
        for a in acks where a.status == .done && perShardFirst[a.shard] == nil { perShardFirst[a.shard] = a.run }
        results.shuffle(using: &generator)

        // Interleave acks and results at random, as two topics read side by side.
        var ledger = ResultLedger()
        var accepted: [ResultRecord] = []
        var ackIndex = 0, resultIndex = 0
        while ackIndex < acks.count || resultIndex < results.count {
            let takeAck = resultIndex == results.count || (ackIndex < acks.count && Bool.random(using: &generator))
            if takeAck {
                accepted += ledger.add(ack: acks[ackIndex]); ackIndex += 1
            } else {
                if let r = ledger.add(result: results[resultIndex]) { accepted.append(r) }
                resultIndex += 1
            }
        }
        #expect(accepted.count == 200 * 5)
        #expect(Set(accepted.map { "\($0.shard)/\($0.id)" }).count == 200 * 5)
        #expect(accepted.allSatisfy { perShardFirst[$0.shard] == $0.run })
        #expect(ledger.incompleteShards.isEmpty)
        #expect(ledger.heldResults == 0)
        #expect(ledger.doneShards == 200)
    }
}
