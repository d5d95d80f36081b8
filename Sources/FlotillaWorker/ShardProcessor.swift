import FlotillaCore
import FlotillaPredictor
import FlotillaSources
import Foundation

/// Runs one shard through the pipeline: read (I/O) → stage 1 … stage k (predictor pools) → results.
///
/// Batches of a stage run concurrently over the stage's pool; several shards run at once (the
/// worker's slots), so reading one shard overlaps predicting another. In sequential mode every
/// batch is awaited in turn, the benchmark baseline.
struct ShardProcessor: Sendable {
    let job: String
    let stages: [(config: StageConfig, pool: PredictorPool)]
    let reader: ShardReader
    let sequential: Bool

    /// What one execution produced.
    struct Outcome: Sendable {
        var results: [ResultRecord]
        var errorSamples: Int
    }

    /// Processes `record` as execution `run`; `progress` is told how many samples passed the last stage.
    func process(_ record: ShardRecord, run: String, isAbandoned: @escaping @Sendable () -> Bool,
                 progress: @escaping @Sendable (Int) -> Void) async throws(FlotillaError) -> Outcome {
        let samples = try await reader.read(record.source)
        // Each sample carries either its current value or the error that ended it, and the stage that failed.
        var values: [Result<JSONValue, StageFailure>] = samples.map { sample in
            sample.input.mapError { StageFailure(stage: nil, message: $0.message) }
        }
        for (index, stage) in stages.enumerated() {
            if isAbandoned() { throw FlotillaError(.internal, "shard \(record.shard) abandoned") }
            let isLast = index == stages.count - 1
            values = await runStage(stage, samples: samples, values: values) { done in
                if isLast { progress(done) }
            }
        }
        var errors = 0
        let results = zip(samples, values).map { sample, value in
            switch value {
            case .success(let output):
                return ResultRecord(job: job, id: sample.id, shard: record.shard, attempt: record.attempt, run: run,
                                    outcome: .output(output))
            case .failure(let failure):
                errors += 1
                return ResultRecord(job: job, id: sample.id, shard: record.shard, attempt: record.attempt, run: run,
                                    outcome: .error(failure.message), stage: failure.stage)
            }
        }
        return Outcome(results: results, errorSamples: errors)
    }

    /// One stage over every still-valid sample, in batches of the stage's size.
    private func runStage(_ stage: (config: StageConfig, pool: PredictorPool), samples: [Sample],
                     values: [Result<JSONValue, StageFailure>], progress: @escaping @Sendable (Int) -> Void) async -> [Result<JSONValue, StageFailure>] {
        let pending = values.indices.filter { if case .success = values[$0] { true } else { false } }
        let batches = stride(from: 0, to: pending.count, by: stage.config.batch).map {
            Array(pending[$0..<min($0 + stage.config.batch, pending.count)])
        }
        var output = values
        let counter = ProgressCounter(total: values.count - pending.count, report: progress)
        func predict(_ batch: [Int]) async -> [(Int, Result<JSONValue, StageFailure>)] {
            let inputs = batch.map { index -> PredictorSample in
                guard case .success(let value) = values[index] else { preconditionFailure("only valid samples are batched") }
                return PredictorSample(id: samples[index].id, input: value)
            }
            let answers = await stage.pool.predict(inputs)
            counter.add(batch.count)
            return zip(batch, answers).map { index, answer in
                (index, answer.mapError { StageFailure(stage: stage.config.name, message: "\(stage.config.name): \($0.message)") })
            }
        }
        if sequential {
            for batch in batches { for (index, value) in await predict(batch) { output[index] = value } }
        } else {
            await withTaskGroup(of: [(Int, Result<JSONValue, StageFailure>)].self) { group in
                for batch in batches { group.addTask { await predict(batch) } }
                for await part in group { for (index, value) in part { output[index] = value } }
            }
        }
        return output
    }
}

/// Why a sample has no output: the stage that failed (nil when it could not even be read).
struct StageFailure: Error, Sendable {
    var stage: String?
    var message: String
}

/// Counts finished samples of a stage and reports the running total.
private final class ProgressCounter: Sendable {
    private let done: Mutex<Int>
    private let report: @Sendable (Int) -> Void

    init(total: Int, report: @escaping @Sendable (Int) -> Void) {
        done = Mutex(total)
        self.report = report
    }

    func add(_ count: Int) {
        let total = done.withLock { $0 += count; return $0 }
        report(total)
    }
}

import Synchronization
