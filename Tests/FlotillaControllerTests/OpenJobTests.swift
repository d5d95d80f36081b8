import FlotillaCore
@testable import FlotillaController
import Testing

/// An open job (`mode: open`) and a fleet that scales to zero, as values: no broker, no sleeps.
@Suite("Open jobs and scale to zero")
struct OpenJobTests {
    func openLedger(shards: Int) -> ShardLedger {
        var ledger = ShardLedger(job: Fixtures.job, settings: Fixtures.settings())
        var manifest = Fixtures.manifest(shards: shards)
        manifest.config.mode = .open
        ledger.apply(manifest: manifest)
        for index in 0..<shards { ledger.apply(shard: Fixtures.shard(index), partition: index % 8, offset: Int64(index)) }
        return ledger
    }

    func finish(_ ledger: inout ShardLedger, _ index: Int, at time: Int64) {
        ledger.apply(ack: Fixtures.ack(index, worker: "w1", startedAt: time - 10, finishedAt: time))
    }

    @Test("an open job stays open when its shards are done, takes shards published later, and ends after the close once the shards topic is quiet")
    func endsAfterClose() throws {
        var ledger = openLedger(shards: 2)
        finish(&ledger, 0, at: 1_000)
        finish(&ledger, 1, at: 1_100)
        #expect(ledger.isComplete)
        #expect(ledger.tick(now: 10_000).summary == nil, "done, but not closed")
        // A pipeline publishes another shard; it is part of the job.
        ledger.apply(shard: Fixtures.shard(7), partition: 7, offset: 0, receivedAt: 20_000)
        #expect(!ledger.isComplete)
        ledger.close(at: 21_000)
        finish(&ledger, 7, at: 22_000)
        #expect(ledger.tick(now: 22_500).summary == nil, "closed 1.5 s ago: a shard sent just before may still be arriving")
        ledger.apply(shard: Fixtures.shard(8), partition: 0, offset: 1, receivedAt: 22_600)
        finish(&ledger, 8, at: 23_000)
        #expect(ledger.tick(now: 24_000).summary == nil, "a shard arrived after the close: the quiet period starts over")
        let summary = try #require(ledger.tick(now: 24_700).summary)
        #expect(summary.done == 4 && summary.samples == 8)
    }

    @Test("a closed-mode job ends when its shards are done, as before")
    func closedModeEndsAlone() {
        var ledger = Fixtures.ledger(shards: 1)
        ledger.apply(ack: Fixtures.ack(0, worker: "w1"))
        #expect(ledger.tick(now: 2_000).summary != nil)
    }

    @Test("with workers.min 0 the fleet starts empty, gets a worker as soon as there is a shard, and drains to zero after the idle timeout")
    func scaleToZero() {
        var fleet = FleetPlanner(config: FleetConfig(min: 0, max: 3, idleTimeout: .seconds(5)), requested: nil)
        #expect(fleet.desired == 0 && fleet.autoscaling)
        #expect(fleet.plan(pods: [], drainLimitMs: 60_000, now: 0).isEmpty)
        fleet.autoscale(samplesLeft: 0, shardsLeft: 0, fleetRate: nil, busyWorkers: 0, now: 0)
        #expect(fleet.desired == 0)
        // A shard arrives: one worker at once, measured or not.
        fleet.autoscale(samplesLeft: 20, shardsLeft: 1, fleetRate: nil, busyWorkers: 0, now: 1_000)
        #expect(fleet.desired == 1)
        #expect(fleet.autoscaler.decisions.last?.reason == "1 shards and no worker")
        let started = fleet.plan(pods: [], drainLimitMs: 60_000, now: 1_000)
        #expect(started == [.start("w1")])
        fleet.started("w1", now: 1_000)
        fleet.heardWorking(from: "w1", now: 1_400)
        // Done: no backlog for the idle timeout drains the worker.
        fleet.autoscale(samplesLeft: 0, shardsLeft: 0, fleetRate: nil, busyWorkers: 0, now: 3_000)
        #expect(fleet.desired == 1)
        fleet.autoscale(samplesLeft: 0, shardsLeft: 0, fleetRate: nil, busyWorkers: 0, now: 8_000)
        #expect(fleet.desired == 0)
        #expect(fleet.autoscaler.decisions.last?.reason == "no backlog")
        #expect(fleet.plan(pods: [], drainLimitMs: 60_000, now: 8_000) == [.retire("w1"), .drain("w1")])
        // And back from zero when the next shard comes.
        let exit = WorkerPod(id: "w1", startedAt: 1_000, exited: true, exitStatus: 0)
        #expect(fleet.plan(pods: [exit], drainLimitMs: 60_000, now: 9_000) == [.forget("w1")])
        fleet.autoscale(samplesLeft: 20, shardsLeft: 1, fleetRate: nil, busyWorkers: 0, now: 30_000)
        #expect(fleet.desired == 1)
    }
}
