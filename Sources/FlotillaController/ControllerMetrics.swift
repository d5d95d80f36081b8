import FlotillaCore
import FlotillaHTTP
import Metrics
import Synchronization

/// The controller's swift-metrics instruments, fed from each status snapshot: gauges take the
/// snapshot's value, counters grow by the difference since the last one. Created once per
/// controller from the factory it was given (tests run many controllers in one process, each
/// with its own registry; only the executable bootstraps `MetricsSystem`).
final class ControllerMetrics: Sendable {
    /// Reasons always exported (at 0) so that rates work from the first scrape.
    static let reasons: [String] = [
        ShardReason.workerLost, .leaseExpired, .retry, .stolen, .speculative, .reconcile, .released,
    ].map(\.rawValue)

    /// The instruments by label value, and the counters' values already exported.
    private struct Instruments: Sendable {
        var shards: [String: Gauge] = [:]
        var samples: Counter
        var expected: Gauge
        var backlog: Gauge
        var reEnqueues: [String: Counter] = [:]
        var restarts: Counter
        var duplicates: Counter
        var workers: Gauge
        var desired: Gauge
        var throughput: Gauge
        var workerThroughput: [String: Gauge] = [:]
        var eta: Gauge?
        var tick: Gauge
        var failedSamples: Counter
        var heartbeatLag: Gauge
        var workerCPU: [String: Gauge] = [:]
        var actions: [String: Counter] = [:]
        var exported: [String: Int] = [:]
    }

    private let job: String
    private let factory: any MetricsFactory
    private let instruments: Mutex<Instruments>

    init(job: String, factory: any MetricsFactory) {
        self.job = job
        self.factory = factory
        let job = [("job", job)]
        var instruments = Instruments(
            samples: Counter(label: MetricCatalog.samples, dimensions: job, factory: factory),
            expected: Gauge(label: MetricCatalog.expectedSamples, dimensions: job, factory: factory),
            backlog: Gauge(label: MetricCatalog.backlog, dimensions: job, factory: factory),
            restarts: Counter(label: MetricCatalog.workerRestarts, dimensions: job, factory: factory),
            duplicates: Counter(label: MetricCatalog.duplicates, dimensions: job, factory: factory),
            workers: Gauge(label: MetricCatalog.workers, dimensions: job, factory: factory),
            desired: Gauge(label: MetricCatalog.desiredWorkers, dimensions: job, factory: factory),
            throughput: Gauge(label: MetricCatalog.throughput, dimensions: job, factory: factory),
            tick: Gauge(label: MetricCatalog.tick, dimensions: job, factory: factory),
            failedSamples: Counter(label: MetricCatalog.failedSamples, dimensions: job, factory: factory),
            heartbeatLag: Gauge(label: MetricCatalog.heartbeatLag, dimensions: job, factory: factory))
        for phase in ShardPhase.allCases {
            instruments.shards[phase.rawValue] = Gauge(label: MetricCatalog.shards, dimensions: job + [("state", phase.rawValue)], factory: factory)
            instruments.shards[phase.rawValue]?.record(0)
        }
        for reason in Self.reasons {
            instruments.reEnqueues[reason] = Counter(label: MetricCatalog.reEnqueues, dimensions: job + [("reason", reason)], factory: factory)
        }
        for gauge in [instruments.expected, instruments.backlog, instruments.workers, instruments.desired, instruments.throughput, instruments.tick,
                      instruments.heartbeatLag] {
            gauge.record(0)
        }
        self.instruments = Mutex(instruments)
    }

    /// Brings every instrument to `status`.
    func update(from status: ControllerStatus) {
        let job = [("job", job)]
        let factory = factory
        instruments.withLock { m in
            for (state, count) in status.shards {
                if m.shards[state] == nil {
                    m.shards[state] = Gauge(label: MetricCatalog.shards, dimensions: job + [("state", state)], factory: factory)
                }
                m.shards[state]?.record(count)
            }
            Self.grow(m.samples, "samples", to: status.samplesDone, &m.exported)
            Self.grow(m.restarts, "restarts", to: status.workerRestarts, &m.exported)
            Self.grow(m.duplicates, "duplicates", to: status.duplicates, &m.exported)
            Self.grow(m.failedSamples, "failedSamples", to: status.failedSamples, &m.exported)
            m.heartbeatLag.record(Double(status.heartbeatLagMs) / 1_000)
            for (reason, count) in status.reEnqueues {
                if m.reEnqueues[reason] == nil {
                    m.reEnqueues[reason] = Counter(label: MetricCatalog.reEnqueues, dimensions: job + [("reason", reason)], factory: factory)
                }
                Self.grow(m.reEnqueues[reason]!, "reenqueues/\(reason)", to: count, &m.exported)
            }
            m.expected.record(status.totalSamples ?? 0)
            m.backlog.record(status.backlogSamples ?? max(0, (status.totalSamples ?? status.samplesDone) - status.samplesDone))
            let live = status.workers.filter { !$0.lost }
            m.workers.record(live.count)
            m.desired.record(status.desiredWorkers)
            m.throughput.record(status.samplesPerSecond)
            m.tick.record(status.tickMs / 1_000)
            for worker in live {
                if m.workerThroughput[worker.id] == nil {
                    m.workerThroughput[worker.id] = Gauge(label: MetricCatalog.workerThroughput, dimensions: job + [("worker", worker.id)], factory: factory)
                }
                m.workerThroughput[worker.id]?.record(worker.samplesPerSecond)
                if let micros = worker.cpuMicrosPerSample {
                    if m.workerCPU[worker.id] == nil {
                        m.workerCPU[worker.id] = Gauge(label: MetricCatalog.workerCPU, dimensions: job + [("worker", worker.id)], factory: factory)
                    }
                    m.workerCPU[worker.id]?.record(micros / 1e6)
                }
            }
            let ids = Set(live.map(\.id))
            for (id, gauge) in m.workerThroughput where !ids.contains(id) {
                gauge.destroy()
                m.workerThroughput[id] = nil
            }
            for (id, gauge) in m.workerCPU where !ids.contains(id) {
                gauge.destroy()
                m.workerCPU[id] = nil
            }
            if let eta = status.etaSeconds, eta.isFinite {
                if m.eta == nil { m.eta = Gauge(label: MetricCatalog.eta, dimensions: job, factory: factory) }
                m.eta?.record(eta)
            } else if let gauge = m.eta {
                gauge.destroy()
                m.eta = nil
            }
        }
    }

    /// Counts an HTTP action by name and result ("published", "refused", "invalid").
    func countAction(_ action: String, result: String) {
        let dimensions = [("job", job), ("action", action), ("result", result)]
        let factory = factory
        instruments.withLock { m in
            let key = "\(action)/\(result)"
            if m.actions[key] == nil { m.actions[key] = Counter(label: MetricCatalog.actions, dimensions: dimensions, factory: factory) }
            m.actions[key]?.increment()
        }
    }

    private static func grow(_ counter: Counter, _ key: String, to value: Int, _ exported: inout [String: Int]) {
        let delta = value - exported[key, default: 0]
        guard delta > 0 else { return }
        counter.increment(by: delta)
        exported[key] = value
    }
}
