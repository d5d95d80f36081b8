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

    /// The record size limit (`kafka.maxMessageBytes`) an output must fit in with its record's
    /// fields; nil when results are not published (`outputs.results: false`).
    var maxMessageBytes: Int?

    /// What one execution produced.
    struct Outcome: Sendable {
        var results: ResultEntries
        /// The ids whose output was too large for a record, replaced by an error.
        var oversized: [String] = []
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
        let (ended, outputBytes) = values.ended
        // Sized once: the outputs, and each entry's id and keys.
        var outcome = Outcome(results: ResultEntries(job: job, shard: record.shard, attempt: record.attempt, run: run,
                                                     capacity: samples.count, bytes: outputBytes + 32 * samples.count))
        let overhead = outcome.results.overheadBytes
        // Through the buffers: zipping the arrays copied every sample and value out (a retain and
        // a release of each input's and output's buffer).
        samples.withUnsafeBufferPointer { samples in
            ended.withUnsafeBufferPointer { ended in
                for index in samples.indices {
                    switch ended[index] {
                    case .success(let output)?:
                        let size = outcome.results.appendOutput(id: samples[index].id, output.bytes)
                        // The producer would reject the record, and with it the whole transaction.
                        if let maxMessageBytes, size + overhead > maxMessageBytes {
                            outcome.results.removeLastOutput()
                            outcome.results.appendError(id: samples[index].id, message: ResultEntries.oversizedMessage(
                                size: size + overhead, maxMessageBytes: maxMessageBytes), stage: nil)
                            outcome.oversized.append(samples[index].id)
                        }
                    case .failure(let failure)?:
                        outcome.results.appendError(id: samples[index].id, message: failure.message, stage: failure.stage)
                    case nil:  // not reached: a unit ends every sample it holds unless the shard is abandoned
                        outcome.results.appendError(id: samples[index].id, message: "internal: the sample never ended", stage: nil)
                    }
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
    /// nil until the sample ends: no placeholder value to retain and release per sample.
    private let state: Mutex<(done: Int, outputBytes: Int, values: [Result<JSONBytes, StageFailure>?])>
    private let report: @Sendable (Int) -> Void

    /// Starts with the samples that could not be read ended, the others to be filled in.
    init(_ samples: [Sample], report: @escaping @Sendable (Int) -> Void) {
        var unread = 0
        var values = [Result<JSONBytes, StageFailure>?](repeating: nil, count: samples.count)
        samples.withUnsafeBufferPointer { samples in
            for index in samples.indices {
                if case .failure(let error) = samples[index].input {
                    values[index] = .failure(StageFailure(stage: nil, message: error.message))
                    unread += 1
                }
            }
        }
        state = Mutex((unread, 0, values))
        self.report = report
    }

    /// A unit ended: the samples at `indices` with the last stage's `answers` (in the same order;
    /// fewer when the shard was abandoned), those in `failures` with an earlier stage's failure.
    func end(_ indices: [Int], answers: [Result<JSONBytes, PredictionError>], stage: String, failures: [(Int, StageFailure)]) {
        let total = answers.withUnsafeBufferPointer { answers in
            state.withLock { state in
                for position in answers.indices {
                    switch answers[position] {
                    case .success(let output):
                        state.outputBytes += output.bytes.count
                        state.values[indices[position]] = .success(output)
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

    /// Each sample's end (nil: it never ended, the shard was abandoned), and the outputs' bytes.
    var ended: (values: [Result<JSONBytes, StageFailure>?], outputBytes: Int) {
        state.withLock { ($0.values, $0.outputBytes) }
    }
}

import Synchronization
