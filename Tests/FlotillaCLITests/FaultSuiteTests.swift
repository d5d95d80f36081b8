import FlotillaCore
import FlotillaTestSupport
import Foundation
import Testing

/// The fault suite of docs/RELIABILITY.md, fast variants: each case runs a real fleet (controller,
/// worker processes, predictor processes, broker), injects the fault, and checks with
/// `flotilla results` and a raw read_committed read that every input sample is answered exactly once.
@Suite("Fault suite", .serialized, .timeLimit(.minutes(10)))
struct FaultSuiteTests {
    /// `tools/fault-suite` sets this to run longer variants: more samples, more kills, longer pauses.
    static let scale = max(1, Int(ProcessInfo.processInfo.environment["FLOTILLA_FAULT_SCALE"] ?? "") ?? 1)
    static let sleepy = "[python3, \(CommandRunner.repositoryRoot)/python/tests/fixtures/faults.py, --sleep, '0.02']"

    /// Whether the controller ended with `status` within `timeout` (expected). A controller still
    /// waiting because the acks topic is held for good is a known defect of the embedded broker,
    /// not of Flotilla: Tansu 0.6 can leave the offset range of a replaced worker's ended producer
    /// epoch behind, which no client can clear (docs/RELIABILITY.md, "held acks"). Then the
    /// results cannot be read past it either, so the caller skips its exactly-once check.
    func ends(_ harness: FleetHarness, within timeout: Duration, status: Int32 = 0) async throws -> Bool {
        do {
            let ended = try await harness.waitForController(timeout: timeout)
            #expect(ended == status)
            return true
        } catch where harness.controllerErrors(start: 1).contains("holds the acks topic") {
            withKnownIssue("Tansu 0.6 left an ended producer epoch's transaction range behind: the acks topic is held for good") {
                throw error
            }
            return false
        }
    }

    /// Every sample exactly once for `flotilla results` and for the raw reader; summary counts match.
    func expectExactlyOnce(_ harness: FleetHarness, answered: [String]? = nil, status: Int32 = 0) async throws {
        let expected = Set(answered ?? harness.samples)
        let (lines, resultsStatus) = try harness.results()
        #expect(resultsStatus == status)
        let ids = lines.compactMap { $0["id"] as? String }
        #expect(ids.count == expected.count, "one line per answered sample")
        #expect(Set(ids) == expected)
        let raw = try await harness.rawReaderResults()
        let rawMissing = expected.subtracting(raw.map(\.id))
        if !rawMissing.isEmpty || raw.count != expected.count {
            print("raw reader gap in \(harness.job):\n" + ((try? await harness.rawReaderDiagnosis(missing: rawMissing)) ?? "no diagnosis"))
        }
        if harness.settleRounds > 0 { print("raw reader of \(harness.job) read on \(harness.settleRounds) time(s) for results still settling") }
        #expect(raw.count == expected.count)
        #expect(Set(raw.map(\.id)) == expected)
        let summary = harness.summary()
        #expect(summary?["samples"] as? Int == expected.count, "summary: \(harness.controllerOutput)")
    }

    // Sized so the job outlasts the kills: with the warm start it no longer spends its first ~4 s
    // waiting for the consumer group, and 5 000 samples ended after two kills.
    @Test("kill -9 of a worker every 2 s (5 kills) during a 12 000-sample job")
    func killWorkers() async throws {
        let harness = try await FleetHarness(samples: 12000 * Self.scale, samplesPerShard: 50, stage: Self.sleepy)
        try harness.submit()
        try harness.startController(workers: 3)
        var kills = 0
        while kills < 5 * Self.scale, harness.controller?.isRunning == true {
            try await Task.sleep(for: .seconds(2))
            if let victim = try harness.workerPIDs().randomElement() {
                kill(victim, SIGKILL)
                kills += 1
            }
        }
        #expect(kills == 5 * Self.scale, "workers were killed mid-job")
        if try await ends(harness, within: .seconds(120 * Self.scale)) {
            try await expectExactlyOnce(harness)
        }
    }

    @Test("A worker stopped (SIGSTOP) past workerTimeout is replaced; its late output is ignored")
    func stoppedWorker() async throws {
        let harness = try await FleetHarness(samples: 1500 * Self.scale, samplesPerShard: 50, stage: Self.sleepy)
        try harness.submit()
        try harness.startController(workers: 2)
        try await harness.waitForDoneShards(atLeast: 2, timeout: .seconds(60))
        let victim = try #require(try harness.workerPIDs().first)
        kill(victim, SIGSTOP)
        try await Task.sleep(for: .seconds(5))
        kill(victim, SIGCONT)
        if try await ends(harness, within: .seconds(120 * Self.scale)) {
            try await expectExactlyOnce(harness)
        }
    }

    // The local backend SIGKILLs a silent worker, so `stoppedWorker` never lets one wake up. Here
    // nobody kills it: it resumes mid-shard with its producer and partitions, long after its shards
    // were re-enqueued and run again elsewhere.
    @Test("A true zombie (external backend): a worker stopped past workerTimeout wakes up; its late output is discarded")
    func zombieWorker() async throws {
        let harness = try await FleetHarness(samples: 1500 * Self.scale, samplesPerShard: 50, stage: Self.sleepy)
        try harness.submit()
        try harness.startController(workers: nil, extra: ["--backend", "external"])
        let zombie = try harness.startWorker(id: "zombie")
        _ = try harness.startWorker(id: "steady")
        try await harness.waitForDoneShards(atLeast: 2, timeout: .seconds(60))
        kill(zombie.processIdentifier, SIGSTOP)
        try await Task.sleep(for: .seconds(8))
        // Running ones as worker-lost; queued ones and warm-start takes it never reported as released.
        let reasons = try await harness.reEnqueueReasons()
        let lostBeforeWaking = reasons["worker-lost", default: 0] + reasons["released", default: 0]
        let woke = Timestamp.now()
        kill(zombie.processIdentifier, SIGCONT)
        #expect(try await harness.waitForController(timeout: .seconds(120 * Self.scale)) == 0)
        #expect(lostBeforeWaking > 0, "the stopped worker's shards were re-enqueued while it slept")
        try await expectExactlyOnce(harness)
        // It really was a zombie: it woke up and acked work after its shards had been handed on.
        let acks = try await harness.acks().filter { $0.status == .done }
        let zombieAcks = acks.filter { $0.worker.hasPrefix("zombie") }
        #expect(!zombieAcks.isEmpty, "the zombie published acks")
        // What it publishes after waking is a race, so it is reported, not required: its predictor
        // kept running, so the batch it held is ready the moment it wakes, but the abandon and
        // supersede of that shard may be read first (then it drops it), and the steady worker may
        // have finished everything else. When it does publish, the reader rule above discarded it.
        let late = zombieAcks.filter { $0.finishedAt >= woke }.map(\.shard)
        let twice = Set(Dictionary(grouping: acks, by: \.shard).filter { $0.value.count > 1 }.keys).intersection(late)
        print("zombie: \(late.count) ack(s) published after waking, \(twice.count) of them for shards also done by the steady worker")
    }

    @Test("A shard that always fails is dead-lettered after maxAttempts; the job exits 3; all else answered")
    func poisonShard() async throws {
        let harness = try await FleetHarness(samples: 400, samplesPerShard: 50, stage: Self.sleepy,
                                             extraInputs: "  - file: doomed.jsonl")
        // The second input vanishes after submit: its shard can never be read, on any worker.
        try #"{"id":"doomed-1","n":1}"#.appending("\n").write(toFile: "\(harness.folder)/doomed.jsonl", atomically: true, encoding: .utf8)
        try harness.submit()
        try FileManager.default.removeItem(atPath: "\(harness.folder)/doomed.jsonl")
        try harness.startController(workers: 2)
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 3)
        try await expectExactlyOnce(harness, status: 3)
        let summary = harness.summary()
        #expect(summary?["dead"] as? Int == 1)
    }

    @Test("Garbage bytes and a wrong-version record in the shards topic are dead-lettered (exit 3); no worker crashes")
    func garbageRecords() async throws {
        let harness = try await FleetHarness(samples: 300, samplesPerShard: 50, stage: Self.sleepy)
        try harness.submit()
        try await harness.publishGarbage([0xFF, 0x00, 0x13, 0x37])
        try await harness.publishGarbage(Array(#"{"v":2,"type":"shard","job":"x"}"#.utf8))
        try harness.startController(workers: 2)
        // Both records carry the key "garbage": the controller counts one undecodable shard, dead-lettered.
        #expect(try await harness.waitForController(timeout: .seconds(120)) == 3)
        try await expectExactlyOnce(harness)
        #expect(harness.summary()?["dead"] as? Int == 1)
        let dead = try await harness.deadLetters()
        #expect(dead.contains { $0.reason.contains("not JSON") })
        #expect(dead.contains { $0.reason.contains("version 2") })
        let logs = try harness.workerLogs()
        #expect(!logs.contains("Fatal error"), "no worker crashed")
    }

    @Test("kill -9 of the controller mid-job, then a new controller: the job completes, nothing lost or repeated")
    func controllerRestart() async throws {
        let harness = try await FleetHarness(samples: 2000 * Self.scale, samplesPerShard: 50, stage: Self.sleepy)
        try harness.submit()
        try harness.startController(workers: 2)
        try await harness.waitForDoneShards(atLeast: 5, timeout: .seconds(60))
        kill(harness.controller!.processIdentifier, SIGKILL)
        _ = try await harness.waitForController(timeout: .seconds(10))
        try harness.startController(workers: 2)
        if try await ends(harness, within: .seconds(120 * Self.scale)) {
            try await expectExactlyOnce(harness)
        }
        let reasons = try await harness.reEnqueueReasons()
        #expect(reasons["worker-lost"] == nil, "a controller restart is not charged to the shards it was running: \(reasons)")
    }

    @Test("The broker paused (SIGSTOP) for 10 s mid-job, then resumed: the job completes")
    func brokerPause() async throws {
        let harness = try await FleetHarness(samples: 2000 * Self.scale, samplesPerShard: 50, stage: Self.sleepy)
        try harness.submit()
        try harness.startController(workers: 2)
        try await harness.waitForDoneShards(atLeast: 3, timeout: .seconds(60))
        kill(harness.fixture.broker.pid, SIGSTOP)
        try await Task.sleep(for: .seconds(10))
        kill(harness.fixture.broker.pid, SIGCONT)
        if try await ends(harness, within: .seconds(150)) {
            try await expectExactlyOnce(harness)
        }
    }
}
