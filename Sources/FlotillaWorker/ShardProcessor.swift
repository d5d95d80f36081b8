import FlotillaCore
import FlotillaPredictor
import FlotillaSources
import Foundation

/// Runs one shard through the pipeline: read (I/O) → stage 1 … stage k (predictor pools) → results.
///
/// Stages stream by batch: the shard's valid samples are cut into units of the largest stage batch
/// size, and each unit goes through every stage on its own, so a unit that finished stage *k* is at
/// stage *k+1* at once while the next unit is still at stage *k*. Every stage's pool stays busy
/// even with one shard in flight; a pool splits a unit larger than its own batch size. Several
/// shards run at once (the worker's slots), so reading one shard overlaps predicting another.
struct ShardProcessor: Sendable {
    let job: String
    let stages: [(config: StageConfig, pool: PredictorPool)]
    let reader: ShardReader

    /// What one execution produced.
    struct Outcome: Sendable {
        var results: [ResultRecord]
        var errorSamples: Int
        /// The results' `entryJSONSize`s, summed and the largest: counted as each result is made,
        /// since a later pass over the array copies every result (a retain and release per string).
        var entryBytes = 0
        var largestEntry = 0
    }

    /// Processes `record` as execution `run`; `progress` is told how many samples passed the last stage.
    func process(_ record: ShardRecord, run: String, isAbandoned: @escaping @Sendable () -> Bool,
                 progress: @escaping @Sendable (Int) -> Void) async throws(FlotillaError) -> Outcome {
        // A count other than the planned one fails the shard: the ack counts what was read.
        let samples = try await reader.read(record.source, planned: record.samples)
        let values = ShardValues(samples, report: progress)
        let valid = samples.indices.filter { if case .success = samples[$0].input { true } else { false } }
        let size = max(1, stages.map(\.config.batch).max() ?? 1)
        // Discarding: the shard's task wakes once, when the last unit is done.
        let executor = unitExecutor
        await withDiscardingTaskGroup { group in
            for start in stride(from: 0, to: valid.count, by: size) {
                let unit = Array(valid[start..<min(start + size, valid.count)])
                group.addTask(executorPreference: executor) { await runStages(unit, of: samples, into: values, isAbandoned: isAbandoned) }
            }
        }
        if isAbandoned() { throw FlotillaError(.internal, "shard \(record.shard) abandoned") }
        var outcome = Outcome(results: [], errorSamples: 0)
        outcome.results.reserveCapacity(samples.count)
        // Through the buffers: zipping the arrays copied every sample and value out (a retain and
        // a release of each input's and output's buffer).
        let ended = values.ended
        samples.withUnsafeBufferPointer { samples in
            ended.withUnsafeBufferPointer { ended in
                for index in samples.indices {
                    // Sized from its parts as it is made: no second pass over the record for it.
                    let id = samples[index].id
                    let made: (outcome: ResultRecord.Outcome, stage: String?, outcomeSize: Int)
                    switch ended[index] {
                    case .success(let output):
                        made = (.output(output), nil, output.bytes.count)
                    case .failure(let failure):
                        outcome.errorSamples += 1
                        made = (.error(failure.message), failure.stage, ResultRecord.errorJSONSize(failure.message))
                    }
                    let size = ResultRecord.entryJSONSize(id: id, outcomeSize: made.outcomeSize, stage: made.stage)
                    outcome.entryBytes += size
                    outcome.largestEntry = max(outcome.largestEntry, size)
                    outcome.results.append(ResultRecord(job: job, id: id, shard: record.shard, attempt: record.attempt, run: run,
                                                        outcome: made.outcome, stage: made.stage))
                }
            }
        }
        return outcome
    }

    /// Where units run: on the pipe loop when every stage has processes, so a reply resumes its
    /// unit on the thread that read it; else (a builtin stage computes in the unit) on the pool.
    private var unitExecutor: (any TaskExecutor)? {
        stages.allSatisfy { $0.pool.replyExecutor != nil } ? stages.first?.pool.replyExecutor : nil
    }

    /// One unit (indices of valid samples) through every stage; a sample that fails a stage ends
    /// with its error, the others with the last stage's output. Stops early when the shard is abandoned.
    private func runStages(_ unit: [Int], of samples: [Sample], into values: ShardValues,
                           isAbandoned: @Sendable () -> Bool) async {
        var indices = unit
        var inputs = unit.map { index in
            guard case .success(let input) = samples[index].input else { preconditionFailure("only valid samples are batched") }
            return PredictorSample(id: samples[index].id, input: input)
        }
        var failures: [(Int, StageFailure)] = []
        for stage in stages.dropLast() {
            if indices.isEmpty || isAbandoned() { break }
            let answers = await stage.pool.predict(inputs)
            var nextIndices: [Int] = []
            var nextInputs: [PredictorSample] = []
            nextIndices.reserveCapacity(indices.count)
            nextInputs.reserveCapacity(indices.count)
            answers.withUnsafeBufferPointer { answers in
                for position in answers.indices {
                    switch answers[position] {
                    case .success(let output):
                        nextIndices.append(indices[position])
                        nextInputs.append(PredictorSample(id: inputs[position].id, input: output))
                    case .failure(let error):
                        failures.append((indices[position], StageFailure(stage: stage.config.name, error)))
                    }
                }
            }
            indices = nextIndices
            inputs = nextInputs
        }
        // The last stage's answers go straight into the shard's values: no array of next inputs.
        var answers: [Result<JSONBytes, PredictionError>] = []
        if let last = stages.last, !indices.isEmpty, !isAbandoned() { answers = await last.pool.predict(inputs) }
        values.end(indices, answers: answers, stage: stages.last?.config.name ?? "", failures: failures)
    }
}

/// Why a sample has no output: the stage that failed (nil when it could not even be read).
struct StageFailure: Error, Sendable {
    var stage: String?
    var message: String

    init(stage: String?, message: String) {
        self.stage = stage
        self.message = message
    }

    /// `stage` answered `error` for the sample.
    init(stage: String, _ error: PredictionError) {
        self.init(stage: stage, message: "\(stage): \(error.message)")
    }
}

/// A shard's samples as they end (its output, or the error that ended it), filled in by its
/// units as each ends; reports how many samples are done.
private final class ShardValues: Sendable {
    private let state: Mutex<(done: Int, values: [Result<JSONBytes, StageFailure>])>
    private let report: @Sendable (Int) -> Void

    /// Starts with the samples that could not be read ended, the others to be filled in.
    init(_ samples: [Sample], report: @escaping @Sendable (Int) -> Void) {
        var unread = 0
        let values = samples.map { sample in
            sample.input.mapError { error in
                unread += 1
                return StageFailure(stage: nil, message: error.message)
            }
        }
        state = Mutex((unread, values))
        self.report = report
    }

    /// A unit ended: the samples at `indices` with the last stage's `answers` (in the same order;
    /// fewer when the shard was abandoned), those in `failures` with an earlier stage's failure.
    func end(_ indices: [Int], answers: [Result<JSONBytes, PredictionError>], stage: String, failures: [(Int, StageFailure)]) {
        let total = answers.withUnsafeBufferPointer { answers in
            state.withLock { state in
                for position in answers.indices {
                    switch answers[position] {
                    case .success(let output): state.values[indices[position]] = .success(output)
                    case .failure(let error): state.values[indices[position]] = .failure(StageFailure(stage: stage, error))
                    }
                }
                for (index, failure) in failures { state.values[index] = .failure(failure) }
                state.done += answers.count + failures.count
                return state.done
            }
        }
        report(total)
    }

    var ended: [Result<JSONBytes, StageFailure>] { state.withLock { $0.values } }
}

import Synchronization
