import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Logging
import Testing

@Suite("Predictor pool", .enabled(if: Fixtures.pythonAvailable, "python3 is not on PATH: predictor pool tests need it"), .timeLimit(.minutes(3)))
struct PredictorPoolTests {
    @Test("many samples over batches of 32 come back in order, one result each")
    func manySamples() async throws {
        let samples = Fixtures.samples(1000) { .object(["n": .int(Int64($0))]) }
        let results = try await withPool(Fixtures.config(script: "identity.py", processes: 2)) { pool in
            await pool.predict(samples)
        }
        #expect(results.count == 1000)
        #expect(results.map(\.value) == samples.map(\.value))
    }

    @Test("the child's maxBatch caps the batch size")
    func maxBatchCaps() async throws {
        let results = try await withPool(Fixtures.config(script: "identity.py", ["4"], batchSize: 32)) { pool in
            let results = await pool.predict(Fixtures.samples(10))
            #expect(await pool.state().batches == 3)
            return results
        }
        #expect(results.compactMap(\.value).count == 10)
    }

    @Test("concurrent batches run on two processes at once")
    func concurrentBatches() async throws {
        let config = Fixtures.config(script: "faults.py", ["--sleep", "1"], processes: 2)
        try await withPool(config) { pool in
            try await waitUntil { await pool.state().processes == 2 }
            let clock = ContinuousClock()
            let start = clock.now
            async let a = pool.predict(Fixtures.samples(3))
            async let b = pool.predict(Fixtures.samples(3))
            let (ra, rb) = await (a, b)
            let elapsed = start.duration(to: clock.now)
            let pidA = ra.first?.value?["pid"], pidB = rb.first?.value?["pid"]
            #expect(pidA != nil && pidB != nil && pidA != pidB)
            #expect(elapsed < .milliseconds(1800), "two 1 s batches took \(elapsed): not concurrent")
        }
    }

    @Test("a process killed by SIGKILL mid-batch is replaced and its batch answered by another")
    func crashMidBatch() async throws {
        let marker = Fixtures.marker()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let config = Fixtures.config(script: "faults.py", ["--crash-once", marker], processes: 2)
        try await withPool(config) { pool in
            let samples = Fixtures.samples(64)
            let results = await pool.predict(samples)
            #expect(results.map { $0.value?["echo"] } == samples.map(\.value))
            let state = await pool.state()
            #expect(state.restarts == 1)
            // The replacement comes up (after the 100 ms backoff) and takes work.
            try await Task.sleep(for: .seconds(2))
            #expect(await pool.state().processes == 2)
        }
    }

    @Test("a hung process is killed after the batch timeout and the batch retried")
    func hang() async throws {
        let marker = Fixtures.marker()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let config = Fixtures.config(script: "faults.py", ["--hang-once", marker], processes: 1, batchTimeout: .seconds(1))
        try await withPool(config) { pool in
            let pids = Fixtures.processes(of: config)
            let clock = ContinuousClock()
            let start = clock.now
            let results = await pool.predict(Fixtures.samples(5))
            #expect(results.allSatisfy { $0.value != nil })
            #expect(start.duration(to: clock.now) >= .seconds(1))
            #expect(await pool.state().restarts == 1)
            #expect(pids.allSatisfy(Fixtures.isGone), "the hung process was not killed and reaped")
        }
    }

    @Test("junk on stdout, bad JSON, a wrong seq or a wrong output count kill the process; the batch is retried",
          arguments: ["--junk-once", "--bad-json-once", "--wrong-seq-once", "--wrong-count-once"])
    func protocolViolations(_ flag: String) async throws {
        let marker = Fixtures.marker()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        let config = Fixtures.config(script: "junk.py", [flag, marker], processes: 1, batchTimeout: .seconds(20))
        try await withPool(config) { pool in
            let clock = ContinuousClock()
            let start = clock.now
            let results = await pool.predict(Fixtures.samples(4))
            #expect(results.map { $0.value?["echo"] } == Fixtures.samples(4).map(\.value))
            #expect(await pool.state().restarts == 1)
            // Detected from the bytes themselves, not by waiting for the batch timeout.
            #expect(start.duration(to: clock.now) < .seconds(10))
        }
    }

    @Test("junk written while idle gets the process replaced before the next batch needs it")
    func junkWhileIdle() async throws {
        let marker = Fixtures.marker()
        defer { try? FileManager.default.removeItem(atPath: marker) }
        try await withPool(Fixtures.config(script: "junk.py", ["--junk-when-idle", marker], processes: 1)) { pool in
            try await waitUntil { await pool.state().restarts == 1 }
            let results = await pool.predict(Fixtures.samples(3))
            #expect(results.allSatisfy { $0.value != nil })
        }
    }

    @Test("a per-sample model error fails that sample only, without a restart")
    func perSampleError() async throws {
        for flag in ["--reject-poison", "--raise-poison"] {
            try await withPool(Fixtures.config(script: "faults.py", [flag])) { pool in
                var samples = Fixtures.samples(10)
                samples[4] = PredictorSample(id: samples[4].id, value: .object(["poison": .bool(true)]))
                let results = await pool.predict(samples)
                #expect(results.filter { $0.value == nil }.count == 1)
                #expect(results[4].error?.kind == .model)
                #expect(results[4].error?.message.contains("poison") == true)
                #expect(await pool.state().restarts == 0)
            }
        }
    }

    @Test("an always-crashing predictor gives error results after maxAttempts; the pool survives")
    func alwaysCrashing() async throws {
        let config = Fixtures.config("classify", script: "faults.py", ["--always-crash"], processes: 1, maxAttempts: 3, isolatePoison: false)
        try await withPool(config) { pool in
            let results = await pool.predict(Fixtures.samples(5))
            #expect(results.count == 5)
            #expect(results.allSatisfy { $0.error?.message == "predictor 'classify' crashed (signal 9) on this batch 3 times" })
            #expect(results.allSatisfy { $0.error?.kind == .fault })
            let state = await pool.state()
            #expect(state.restarts == 3)
            #expect(state.failedSamples == 5)
        }
    }

    @Test("poison isolation: one crashing sample fails alone, its neighbours get outputs")
    func poisonIsolation() async throws {
        let config = Fixtures.config("classify", script: "faults.py", ["--crash-on-marker"], processes: 2, maxAttempts: 2)
        try await withPool(config) { pool in
            var samples = Fixtures.samples(8)
            samples[5] = PredictorSample(id: samples[5].id, value: .object(["crash": .bool(true)]))
            let results = await pool.predict(samples)
            for (i, result) in results.enumerated() where i != 5 {
                #expect(result.value?["echo"] == samples[i].value)
            }
            #expect(results[5].error?.message == "predictor 'classify' crashed (signal 9) on this sample (alone, after its batch failed 2 times)")
            // 2 full-batch faults + one per bisection level (8 → 4 → 2 → 1).
            #expect(await pool.state().restarts == 5)
        }
    }

    @Test("pipelining: a batch lost behind a crashing one is retried without being charged for it")
    func interruptedIsNotCharged() async throws {
        // One process, batches of 4: the clean batch waits behind the crashing one at every try.
        let config = Fixtures.config("m", script: "faults.py", ["--crash-on-marker", "--sleep", "0.2"], batchSize: 4,
                                     maxAttempts: 2, isolatePoison: false)
        try await withPool(config) { pool in
            var samples = Fixtures.samples(8)
            samples[1] = PredictorSample(id: samples[1].id, value: .object(["crash": .bool(true)]))
            let results = await pool.predict(samples)
            #expect(results[0..<4].allSatisfy { $0.error?.kind == .fault }, "the crashing batch fails after 2 faults")
            for i in 4..<8 { #expect(results[i].value?["echo"] == samples[i].value, "sample \(i)") }
        }
    }

    @Test("a batch-level error frame is retried once, then every sample gets the error")
    func batchError() async throws {
        try await withPool(Fixtures.config("m", script: "faults.py", ["--batch-error"])) { pool in
            let results = await pool.predict(Fixtures.samples(3))
            #expect(results.allSatisfy { $0.error == PredictionError(.batch, "predictor 'm' failed this batch twice: model is not ready") })
            #expect(await pool.state().restarts == 0)
        }
    }

    @Test("a process exiting with a status mid-batch names the status when it keeps failing")
    func exitStatusInMessage() async throws {
        let code = "import os; from flotilla_predictor import serve; serve(lambda xs: os._exit(7))"
        var config = Fixtures.config("m", script: "identity.py", maxAttempts: 2, isolatePoison: false)
        config.command = .process(argv: ["python3", "-c", code])
        try await withPool(config) { pool in
            let results = await pool.predict(Fixtures.samples(2))
            #expect(results.allSatisfy { $0.error?.message == "predictor 'm' exited (status 7) on this batch 2 times" })
        }
    }

    @Test("start() fails with a clear error when the command cannot start")
    func startupFailure() async throws {
        var config = Fixtures.config(script: "identity.py")
        config.command = .process(argv: ["/nonexistent/predictor"])
        let pool = try PredictorPool(config: config, logger: Logger(label: "t"))
        await #expect {
            try await pool.start()
        } throws: { error in
            (error as? FlotillaError)?.code == .predictor && "\(error)".contains("/nonexistent/predictor") && "\(error)".contains("not found")
        }
        let results = await pool.predict(Fixtures.samples(1))
        #expect(results.first?.error?.kind == .unavailable)
    }

    @Test("shutdown stops and reaps every child process")
    func shutdownLeavesNoChildren() async throws {
        let config = Fixtures.config(script: "identity.py", processes: 3)
        let pool = try PredictorPool(config: config, logger: Logger(label: "t"))
        try await pool.start()
        _ = await pool.predict(Fixtures.samples(100))
        try await waitUntil { await pool.state().processes == 3 }
        let pids = Fixtures.processes(of: config)
        #expect(pids.count == 3)
        #expect(pids.allSatisfy { !Fixtures.isGone($0) })
        await pool.shutdown()
        #expect(pids.allSatisfy(Fixtures.isGone), "a predictor process is still there (or a zombie) after shutdown")
        let after = await pool.predict(Fixtures.samples(1))
        #expect(after.first?.error?.message == "predictor 'test' was shut down")
    }

    @Test("resize grows and shrinks the pool within min...max")
    func resize() async throws {
        try await withPool(Fixtures.config(script: "identity.py", processes: 1, maxProcesses: 3)) { pool in
            await pool.resize(to: 10)
            try await waitUntil { await pool.state().processes == 3 }
            await pool.resize(to: 1)
            try await waitUntil { await pool.state().processes == 1 }
            #expect(await pool.state().desired == 1)
            let results = await pool.predict(Fixtures.samples(40))
            #expect(results.allSatisfy { $0.value != nil })
        }
    }

    @Test("autoscaling grows the pool while batches wait and shrinks it when idle")
    func autoscale() async throws {
        var config = Fixtures.config(script: "faults.py", ["--sleep", "0.4"], processes: 1, maxProcesses: 2)
        config.autoscale = .init(growAfter: .milliseconds(200), shrinkAfterIdle: .seconds(2), interval: .milliseconds(50))
        try await withPool(config) { pool in
            #expect(await pool.state().processes == 1)
            // Four concurrent batches on one process: they queue, so the pool grows.
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<4 { group.addTask { _ = await pool.predict(Fixtures.samples(2)) } }
            }
            #expect(await pool.state().desired == 2)
            try await waitUntil { await pool.state().processes == 2 }
            // Idle for shrinkAfterIdle: back to one process.
            try await waitUntil { let s = await pool.state(); return s.processes == 1 && s.desired == 1 }
        }
    }

    @Test("a pool with minProcesses 0 shrinks to zero when idle and starts a process for the next batch")
    func scaleFromZero() async throws {
        var config = Fixtures.config(script: "identity.py", processes: 1)
        config.minProcesses = 0
        config.autoscale = .init(growAfter: .milliseconds(200), shrinkAfterIdle: .milliseconds(300), interval: .milliseconds(50))
        try await withPool(config) { pool in
            try await waitUntil { await pool.state().processes == 0 }
            let results = await pool.predict(Fixtures.samples(5))
            #expect(results.map(\.value) == Fixtures.samples(5).map(\.value))
        }
    }

    @Test("run() serves until its task is cancelled, then shuts the pool down")
    func runUntilCancelled() async throws {
        let config = Fixtures.config(script: "identity.py", processes: 2)
        let pool = try PredictorPool(config: config, logger: Logger(label: "t"))
        let service = Task { try await pool.run() }
        try await waitUntil { await pool.state().processes == 2 }
        let pids = Fixtures.processes(of: config)
        #expect(pids.count == 2)
        #expect(await pool.predict(Fixtures.samples(3)).allSatisfy { $0.value != nil })
        service.cancel()
        try await service.value
        #expect(pids.allSatisfy(Fixtures.isGone))
    }
}

/// Polls `condition` every 50 ms for up to `timeout`.
func waitUntil(timeout: Duration = .seconds(15), _ condition: () async -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("condition not met within \(timeout)")
}
