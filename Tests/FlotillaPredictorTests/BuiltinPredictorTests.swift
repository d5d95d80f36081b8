import FlotillaCore
@testable import FlotillaPredictor
import Logging
import MetricsTestKit
import Testing

@Suite("Builtin predictors")
struct BuiltinPredictorTests {
    func builtinPool(_ name: String) throws -> PredictorPoolConfig {
        PredictorPoolConfig(name: name, command: .builtin(name), batchSize: 4)
    }

    @Test("identity returns every input unchanged, in order, across batches")
    func identity() async throws {
        let samples = Fixtures.samples(10) { .object(["n": .int(Int64($0))]) }
        let results = try await withPool(try builtinPool("identity")) { pool in await pool.predict(samples) }
        #expect(results.map(\.value) == samples.map(\.value))
    }

    @Test("hash-embed gives a deterministic, L2-normalised 64-dimensional embedding")
    func hashEmbed() async throws {
        let inputs: [JSONValue] = [.string("The quick brown fox"), .object(["text": .string("the QUICK, brown fox!")]), .string(""), .object(["a": .int(1)])]
        let results = try await withPool(try builtinPool("hash-embed")) { pool in
            await pool.predict(inputs.enumerated().map { PredictorSample(id: "\($0.offset)", value: $0.element) })
        }
        func vector(_ result: Result<JSONBytes, PredictionError>) -> [Double] {
            guard case .array(let items) = result.value?["embedding"] ?? .null else { return [] }
            return items.map { if case .double(let d) = $0 { d } else { .nan } }
        }
        let first = vector(results[0])
        #expect(first.count == 64)
        #expect(abs(first.reduce(0) { $0 + $1 * $1 } - 1) < 1e-9)
        // Same tokens after lowercasing and punctuation: the same embedding.
        #expect(vector(results[1]) == first)
        #expect(results[0].value?["tokens"] == .int(4))
        // No tokens: all zeros, not NaN.
        #expect(vector(results[2]) == [Double](repeating: 0, count: 64))
        // A non-text input embeds its canonical JSON text {"a":1}: tokens "a" and "1".
        #expect(results[3].value?["tokens"] == .int(2))
        // Reference values from the Python implementation in docs/PREDICTORS.md.
        #expect(HashEmbedPredictor.fnv1a("fox") == 0xdcb2_8218_fed9_eb8e)
        var expected = [Double](repeating: 0, count: 64)
        expected[14] = 0.5; expected[15] = 0.5; expected[28] = 0.5; expected[60] = -0.5
        #expect(first == expected)
    }

    @Test("an unknown builtin is a configuration error naming the known ones")
    func unknownBuiltin() {
        #expect {
            try PredictorPool(config: PredictorPoolConfig(name: "x", command: .builtin("nope")), logger: Logger(label: "t"))
        } throws: { error in
            "\(error)".contains("unknown builtin 'nope'") && "\(error)".contains("hash-embed")
        }
    }

    @Test("invalid settings are rejected with a message naming the stage and the field")
    func validation() {
        let bad = [
            PredictorPoolConfig(name: "s", command: .process(argv: []), batchSize: 1),
            PredictorPoolConfig(name: "s", command: .builtin("identity"), batchSize: 0),
            PredictorPoolConfig(name: "s", command: .builtin("identity"), minProcesses: 3, maxProcesses: 2),
            PredictorPoolConfig(name: "s", command: .builtin("identity"), maxAttempts: 0),
        ]
        for config in bad {
            #expect(throws: FlotillaError.self) { try config.validate() }
        }
        #expect(throws: Never.self) { try PredictorPoolConfig(name: "s", command: .builtin("identity")).validate() }
    }

    @Test("batches, errors and batch times are counted through swift-metrics with the stage dimension")
    func metrics() async throws {
        let metrics = TestMetrics()
        let pool = try PredictorPool(config: try builtinPool("identity"), logger: Logger(label: "t"), metricsFactory: metrics)
        try await pool.start()
        _ = await pool.predict(Fixtures.samples(10))
        await pool.shutdown()
        let batches = try metrics.expectCounter("flotilla_predictor_batches_total", [("stage", "identity")])
        #expect(batches.totalValue == 3)
        let timer = try metrics.expectTimer("flotilla_predictor_batch_seconds", [("stage", "identity")])
        #expect(timer.values.count == 3)
        let state = await pool.state()
        #expect(state.batches == 3 && state.failedSamples == 0)
    }
}
