import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Logging
import Testing

@Suite("Predictor process", .enabled(if: Fixtures.pythonAvailable, "python3 is not on PATH: predictor process tests need it"), .timeLimit(.minutes(2)))
struct PredictorProcessTests {
    let env = ["PYTHONPATH": Fixtures.pythonDir]

    func launch(_ script: String, _ args: [String] = [], timeout: Duration = .seconds(30), logger: Logger = Logger(label: "t")) async throws -> PredictorProcess {
        try await PredictorProcess.launch(
            stage: "p", argv: ["python3", Fixtures.fixture(script)] + args, environment: env, workingDirectory: nil,
            startupTimeout: timeout, logger: logger
        )
    }

    @Test("handshake: the child's hello gives its name and maxBatch")
    func handshake() async throws {
        let process = try await launch("identity.py", ["16"])
        #expect(process.hello == PredictorProcess.Hello(name: "identity", maxBatch: 16, columns: true))
        #expect(process.isHealthy)
        await process.shutdown(grace: .seconds(2))
        #expect(Fixtures.isGone(process.pid))
    }

    @Test("a batch round trip keeps order and values, and seqs advance")
    func roundTrip() async throws {
        let process = try await launch("identity.py")
        for round in 0..<3 {
            let samples = Fixtures.samples(500) { .object(["i": .int(Int64($0 + round)), "s": .string("ü\n\"")]) }
            let reply = await process.run(samples, timeout: .seconds(10))
            #expect(reply.success?.values == samples.map(\.value))
        }
        await process.shutdown(grace: .seconds(2))
    }

    @Test("stderr lines reach the Logger with the stage and pid, and print() does not corrupt the protocol")
    func stderrForwarding() async throws {
        let store = CapturingLogHandler.Store()
        let logger = Logger(label: "t") { _ in CapturingLogHandler(store: store) }
        let process = try await launch("faults.py", logger: logger)
        let reply = await process.run(Fixtures.samples(2), timeout: .seconds(10))
        guard case .success(.outputs(let outputs)) = reply else {
            Issue.record("unexpected reply \(reply)")
            return
        }
        #expect(outputs.count == 2)
        await process.shutdown(grace: .seconds(2))
        let line = store.all.first { $0.message == "stray print from predict goes to stderr" }
        #expect(line?.metadata["flotilla.stage"] == "p")
        #expect(line?.metadata["flotilla.pid"] == "\(process.pid)")
    }

    @Test("a nonexistent executable is a clear startup error")
    func missingExecutable() async {
        await #expect {
            try await PredictorProcess.launch(stage: "p", argv: ["no-such-predictor-xyz", "--flag"], environment: [:], workingDirectory: nil, startupTimeout: .seconds(5), logger: Logger(label: "t"))
        } throws: { error in
            let message = "\(error)"
            return message.contains("no-such-predictor-xyz") && message.contains("not found")
        }
    }

    @Test("a child that exits before its hello: the error has its exit status and last stderr lines")
    func exitsBeforeHello() async {
        await #expect {
            try await launch("faults.py", ["--fail-setup"])
        } throws: { error in
            let message = "\(error)"
            return message.contains("exited (status 1) before sending its hello frame") && message.contains("model file is missing")
        }
        await #expect {
            try await launch("does-not-exist.py")
        } throws: { error in
            "\(error)".contains("exited (status 2)") && "\(error)".contains("does-not-exist.py")
        }
    }

    @Test("a child that never says hello is killed after the startup timeout")
    func helloTimeout() async {
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            try await launch("faults.py", ["--no-hello"], timeout: .seconds(1))
        } throws: { error in
            "\(error)".contains("hung (no reply within 1.0s, killed) before sending its hello frame")
        }
        #expect(start.duration(to: clock.now) < .seconds(10))
    }

    @Test("the working directory and environment reach the child")
    func workingDirectoryAndEnvironment() async throws {
        let directory = NSTemporaryDirectory() + "flotilla-wd-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let code = "import os; from flotilla_predictor import serve; serve(lambda xs: [[os.getcwd(), os.environ.get('FLOTILLA_TEST')] for x in xs])"
        let process = try await PredictorProcess.launch(
            stage: "p", argv: ["python3", "-c", code], environment: env.merging(["FLOTILLA_TEST": "yes"]) { $1 },
            workingDirectory: directory, startupTimeout: .seconds(30), logger: Logger(label: "t"))
        let reply = await process.run(Fixtures.samples(1), timeout: .seconds(10))
        let real = URL(fileURLWithPath: directory).resolvingSymlinksInPath().path
        #expect(reply.success?.values == [.array([.string(real), .string("yes")])])
        await process.shutdown(grace: .seconds(2))
    }

    @Test("a crash during a batch is reported with the signal, and the child is reaped")
    func crashReported() async throws {
        let process = try await launch("faults.py", ["--always-crash"])
        let reply = await process.run(Fixtures.samples(3), timeout: .seconds(10))
        #expect(reply == .failure(.exited(.signaled(9))))
        #expect(await process.waitForExit(timeout: .seconds(5)))
        #expect(Fixtures.isGone(process.pid))
        #expect(!process.isHealthy)
    }

    @Test("a process that ignores the shutdown frame and SIGTERM is killed after the grace periods")
    func stubbornShutdown() async throws {
        let code = "import signal, time; from flotilla_predictor import serve; signal.signal(signal.SIGTERM, signal.SIG_IGN); serve(lambda xs: time.sleep(3600))"
        let process = try await PredictorProcess.launch(
            stage: "p", argv: ["python3", "-c", code], environment: env, workingDirectory: nil,
            startupTimeout: .seconds(30), logger: Logger(label: "t"))
        // Busy in predict: it cannot read the shutdown frame, and it ignores SIGTERM.
        async let reply = process.run(Fixtures.samples(1), timeout: .seconds(60))
        try await Task.sleep(for: .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        await process.shutdown(grace: .milliseconds(500))
        #expect(start.duration(to: clock.now) < .seconds(5))
        #expect(await reply == .failure(.stopped))
        #expect(Fixtures.isGone(process.pid))
    }

    @Test("pipelining: two batches sent at once are answered in order, each timed from when it runs")
    func twoInFlight() async throws {
        // 0.6 s per batch against a 1 s timeout: the second batch is answered 1.2 s after it was sent.
        let process = try await launch("faults.py", ["--sleep", "0.6"])
        let first = Fixtures.samples(3), second = Fixtures.samples(2) { .int(Int64(100 + $0)) }
        async let a = process.run(first, timeout: .seconds(1))
        async let b = process.run(second, timeout: .seconds(1))
        let (ra, rb) = await (a, b)
        #expect(ra.success?.values?.map { $0?["echo"] } == first.map { $0.value })
        #expect(rb.success?.values?.map { $0?["echo"] } == second.map { $0.value })
        await process.shutdown(grace: .seconds(2))
    }

    @Test("pipelining: a crash fails the batch it happened on; the batch waiting behind it is interrupted")
    func crashBehind() async throws {
        let process = try await launch("faults.py", ["--always-crash", "--sleep", "0.5"])
        async let first = process.run(Fixtures.samples(3), timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(100))
        let second = await process.run(Fixtures.samples(2), timeout: .seconds(10))
        #expect(await first == .failure(.exited(.signaled(9))))
        #expect(second == .failure(.interrupted))
        #expect(await process.waitForExit(timeout: .seconds(5)))
    }

    @Test("frames larger than the pipe: what does not fit goes to the writer thread, and the frame behind it waits its turn")
    func framesLargerThanThePipe() async throws {
        // Each frame is ~1.2 MB against a 256 KiB pipe, and the child sleeps before reading the
        // second: the first is finished by the writer thread, the second queued behind it, in order.
        let process = try await launch("faults.py", ["--sleep", "0.3"])
        let payload = String(repeating: "y", count: 100_000)
        for _ in 0..<2 {
            let first = Fixtures.samples(12) { .string("\($0)" + payload) }
            let second = Fixtures.samples(12) { .string("\(100 + $0)" + payload) }
            async let a = process.run(first, timeout: .seconds(10))
            async let b = process.run(second, timeout: .seconds(10))
            let (ra, rb) = await (a, b)
            #expect(ra.success?.values?.map { $0?["echo"] } == first.map { $0.value })
            #expect(rb.success?.values?.map { $0?["echo"] } == second.map { $0.value })
        }
        #expect(process.isHealthy)
        await process.shutdown(grace: .seconds(2))
        #expect(Fixtures.isGone(process.pid))
    }

    @Test("a frame lent to the pipe stays intact until the child reads it, though the worker allocates meanwhile")
    func lentFramesStayIntact() async throws {
        // The child sleeps on the first batch while the second waits unread in the pipe, whose
        // pages are the frame's own: memory of the frame's size is allocated and overwritten
        // meanwhile, which would land on the second frame had it been freed when written.
        let process = try await launch("faults.py", ["--sleep", "0.3"])
        let payload = String(repeating: "y", count: 2_000)
        let first = Fixtures.samples(8) { .string("\($0)" + payload) }
        let second = Fixtures.samples(8) { .string("\(100 + $0)" + payload) }
        async let a = process.run(first, timeout: .seconds(10))
        async let b = process.run(second, timeout: .seconds(10))
        try await Task.sleep(for: .milliseconds(100))
        let scribbled = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<8 {
                group.addTask {
                    var scribbles: [[UInt8]] = []
                    for size in stride(from: 4_000, to: 80_000, by: 250) { scribbles.append([UInt8](repeating: 0x7A, count: size)) }
                    return scribbles.count
                }
            }
            return await group.reduce(0, +)
        }
        let (ra, rb) = await (a, b)
        #expect(scribbled == 8 * 304)
        let firstIntact = ra.success?.values?.map { $0?["echo"] } == first.map { $0.value }
        let secondIntact = rb.success?.values?.map { $0?["echo"] } == second.map { $0.value }
        #expect(firstIntact && secondIntact, "a batch came back altered (first intact: \(firstIntact), second: \(secondIntact))")
        await process.shutdown(grace: .seconds(2))
    }

    @Test("a child that closed its stdin: the batch fails as a write failure, and the worker is not killed by SIGPIPE")
    func closedStdin() async throws {
        // Closes its stdin, says hello and stays alive: the frame is written from the calling
        // task (not the writer thread) into a pipe nobody reads, which raises SIGPIPE there.
        let code = """
        import json, os, struct, sys, time
        os.close(0)
        hello = json.dumps({"type": "hello", "v": 1, "name": "closer", "columns": True}).encode()
        sys.stdout.buffer.write(struct.pack(">I", len(hello)) + hello); sys.stdout.flush()
        time.sleep(30)
        """
        let process = try await PredictorProcess.launch(stage: "p", argv: ["python3", "-c", code], environment: env,
                                                        workingDirectory: nil, startupTimeout: .seconds(30), logger: Logger(label: "t"))
        let reply = await process.run(Fixtures.samples(3), timeout: .seconds(10))
        guard case .failure(.writeFailed(let error)) = reply else {
            Issue.record("expected a write failure, got \(reply)")
            return
        }
        #expect(error.contains("pipe"), "\(error)")
        #expect(await process.waitForExit(timeout: .seconds(5)))
    }

    @Test("a batch too large to send is answered with a batch error, and the batch sent beside it still runs")
    func oversizedBatch() async throws {
        let process = try await launch("identity.py")
        let huge = [PredictorSample(id: "big", value: .string(String(repeating: "x", count: PredictorProtocol.maxFrameBytes)))]
        let small = Fixtures.samples(2)
        async let big = process.run(huge, timeout: .seconds(10))
        async let next = process.run(small, timeout: .seconds(10))
        let (bigReply, nextReply) = await (big, next)
        guard case .success(.batchError(let message)) = bigReply else {
            Issue.record("expected a batch error, got \(bigReply)")
            return
        }
        #expect(message.contains("over the \(PredictorProtocol.maxFrameBytes)-byte limit"))
        #expect(nextReply.success?.values == small.map(\.value))
        #expect(process.isHealthy)
        await process.shutdown(grace: .seconds(2))
    }
}

