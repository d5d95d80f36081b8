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
        // Each sample carries either its current value or the error that ended it, and the stage that failed.
        var values: [Result<JSONBytes, StageFailure>] = samples.map { sample in
            sample.input.mapError { StageFailure(stage: nil, message: $0.message) }
        }
        let valid = values.indices.filter { if case .success = values[$0] { true } else { false } }
        let size = max(1, stages.map(\.config.batch).max() ?? 1)
        let units = stride(from: 0, to: valid.count, by: size).map { start in
            valid[start..<min(start + size, valid.count)].map { index -> (Int, JSONBytes) in
                guard case .success(let input) = values[index] else { preconditionFailure("only valid samples are batched") }
                return (index, input)
            }
        }
        let collector = UnitCollector(done: samples.count - valid.count, report: progress)
        let ids = samples.map(\.id)
        // Discarding: the shard's task wakes once, when the last unit is done, not once per unit.
        await withDiscardingTaskGroup { group in
            for unit in units {
                group.addTask { collector.add(await runStages(unit, ids: ids, isAbandoned: isAbandoned)) }
            }
        }
        for (index, value) in collector.ended { values[index] = value }
        if isAbandoned() { throw FlotillaError(.internal, "shard \(record.shard) abandoned") }
        var outcome = Outcome(results: [], errorSamples: 0)
        outcome.results = zip(ids, values).map { id, value in
            let result: ResultRecord
            switch value {
            case .success(let output):
                result = ResultRecord(job: job, id: id, shard: record.shard, attempt: record.attempt, run: run,
                                      outcome: .output(output))
            case .failure(let failure):
                outcome.errorSamples += 1
                result = ResultRecord(job: job, id: id, shard: record.shard, attempt: record.attempt, run: run,
                                      outcome: .error(failure.message), stage: failure.stage)
            }
            let size = result.entryJSONSize
            outcome.entryBytes += size
            outcome.largestEntry = max(outcome.largestEntry, size)
            return result
        }
        return outcome
    }

    /// One unit of (sample index, input) through every stage; a sample that fails a stage leaves
    /// the unit with its error. Stops early when the shard is abandoned.
    private func runStages(_ unit: [(Int, JSONBytes)], ids: [String],
                           isAbandoned: @Sendable () -> Bool) async -> [(Int, Result<JSONBytes, StageFailure>)] {
        var current = unit
        var ended: [(Int, Result<JSONBytes, StageFailure>)] = []
        for stage in stages {
            if current.isEmpty || isAbandoned() { break }
            let answers = await stage.pool.predict(current.map { PredictorSample(id: ids[$0.0], input: $0.1) })
            var next: [(Int, JSONBytes)] = []
            next.reserveCapacity(current.count)
            for ((index, _), answer) in zip(current, answers) {
                switch answer {
                case .success(let output): next.append((index, output))
                case .failure(let error):
                    let name = stage.config.name
                    ended.append((index, .failure(StageFailure(stage: name, message: "\(name): \(error.message)"))))
                }
            }
            current = next
        }
        ended.append(contentsOf: current.map { ($0.0, .success($0.1)) })
        return ended
    }
}

/// Why a sample has no output: the stage that failed (nil when it could not even be read).
struct StageFailure: Error, Sendable {
    var stage: String?
    var message: String
}

/// Collects the units' samples as each unit ends, and reports how many samples are done.
private final class UnitCollector: Sendable {
    private let state: Mutex<(done: Int, ended: [(Int, Result<JSONBytes, StageFailure>)])>
    private let report: @Sendable (Int) -> Void

    /// - Parameter done: samples done before any unit runs (those that could not be read).
    init(done: Int, report: @escaping @Sendable (Int) -> Void) {
        state = Mutex((done, []))
        self.report = report
    }

    /// A unit's (sample index, value) pairs.
    func add(_ unit: [(Int, Result<JSONBytes, StageFailure>)]) {
        let total = state.withLock { state in
            state.done += unit.count
            state.ended.append(contentsOf: unit)
            return state.done
        }
        report(total)
    }

    var ended: [(Int, Result<JSONBytes, StageFailure>)] { state.withLock { $0.ended } }
}

import Synchronization
