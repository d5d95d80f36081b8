import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Logging
import Testing

/// The quickstart model (tools/setup trains it into .tools/models) through a real pool.
@Suite("Digits quickstart model", .timeLimit(.minutes(2)))
struct DigitsModelTests {
    static let venvPython = Fixtures.repoRoot + "/.tools/venv/bin/python"
    static let model = Fixtures.repoRoot + "/.tools/models/digits.pickle"
    static let data = Fixtures.repoRoot + "/.tools/data/digits.jsonl"
    static let available = [venvPython, model, data].allSatisfy { FileManager.default.fileExists(atPath: $0) }

    @Test("classifies the digits data set and rejects malformed inputs per sample",
          .enabled(if: available, "run tools/setup first: it trains .tools/models/digits.pickle"))
    func digits() async throws {
        let lines = try String(contentsOfFile: Self.data, encoding: .utf8).split(separator: "\n").prefix(300)
        var samples: [PredictorSample] = []
        var labels: [JSONValue] = []
        for line in lines {
            let record = try JSONBytes.validating(Array(line.utf8)).get().value
            samples.append(PredictorSample(id: record["id"]?.stringValue ?? "", value: .object(["pixels": record["pixels"] ?? .null])))
            labels.append(record["label"] ?? .null)
        }
        samples.insert(PredictorSample(id: "bad-1", value: .object(["pixels": .array([.int(1)])])), at: 7)
        samples.insert(PredictorSample(id: "bad-2", value: .string("not an image")), at: 40)
        let config = PredictorPoolConfig(
            name: "digits", command: .process(argv: [Self.venvPython, Fixtures.pythonDir + "/examples/digits_predictor.py", "--model", Self.model]),
            batchSize: 64, minProcesses: 2, maxProcesses: 2, autoscale: nil)
        let results = try await withPool(config) { pool in await pool.predict(samples) }
        #expect(results[7].error?.message == "\"pixels\" must be a list of 64 numbers, got 1 items")
        #expect(results[40].error?.message == "input must be an object with a \"pixels\" field")
        var good = results
        good.remove(at: 40)
        good.remove(at: 7)
        let correct = zip(good, labels).filter { $0.value?["label"] == $1 }.count
        #expect(Double(correct) / Double(labels.count) > 0.9)
        if case .double(let confidence) = good[0].value?["confidence"] ?? .null {
            #expect(confidence > 0 && confidence <= 1)
        } else {
            Issue.record("no confidence in \(good[0])")
        }
    }
}

/// Protocol overhead: the identity Python predictor through a 2-process pool vs the same Python
/// code called in-process in a loop. Opt-in (FLOTILLA_BENCH=1): it measures, it does not assert.
@Suite("Predictor benchmark", .enabled(if: ProcessInfo.processInfo.environment["FLOTILLA_BENCH"] != nil, "set FLOTILLA_BENCH=1 to run"))
struct PredictorBenchmark {
    @Test("identity predictor: pool over 2 processes vs in-process Python loop")
    func protocolOverhead() async throws {
        let batches = Int(ProcessInfo.processInfo.environment["FLOTILLA_BENCH_BATCHES"] ?? "") ?? 4000
        let batchSize = 32
        let input: JSONValue = .object(["id": .string("digit-00001"), "pixels": .array((0..<64).map { .int(Int64($0 % 17)) })])
        let batch = (0..<batchSize).map { PredictorSample(id: "s\($0)", value: input) }
        let config = Fixtures.config("identity", script: "identity.py", batchSize: batchSize, processes: 2)
        let clock = ContinuousClock()
        let elapsed = try await withPool(config) { pool in
            try await waitUntil { await pool.state().processes == 2 }
            _ = await pool.predict(batch)
            return await clock.measure {
                // Four callers keep both processes busy, as a worker's pipeline would.
                await withTaskGroup(of: Void.self) { group in
                    for caller in 0..<4 {
                        group.addTask {
                            for _ in stride(from: caller, to: batches, by: 4) { _ = await pool.predict(batch) }
                        }
                    }
                }
            }
        }
        // The parent's share: encoding the request and decoding the reply, no process involved.
        let reply = PredictorProtocol.encodeFrame(.object(["type": .string("result"), "seq": .int(1), "outputs": .array(batch.map { .object(["output": $0.input.value]) })]))
        let codec = clock.measure {
            for seq in 0..<batches {
                _ = PredictorProtocol.predictFrame(seq: Int64(seq), samples: batch)
                _ = try? ChildMessage(payload: Array(reply[4...]))
            }
        }
        print("BENCH parent frame codec alone: \(String(format: "%.0f", Double(batches) / codec.seconds)) batches/s (\(String(format: "%.1f", codec.seconds / Double(batches) * 1e6)) µs per batch)")
        let seconds = elapsed.seconds
        print("BENCH pool(2 processes, batch \(batchSize)): \(batches) batches in \(String(format: "%.2f", seconds)) s = \(String(format: "%.0f", Double(batches) / seconds)) batches/s, \(String(format: "%.0f", Double(batches * batchSize) / seconds)) samples/s")
    }
}
