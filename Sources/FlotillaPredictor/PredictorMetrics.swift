import Metrics

/// The pool's swift-metrics instruments, created once per pool with the `stage` dimension.
struct PredictorMetrics: Sendable {
    /// Batches answered (with outputs or error results).
    let batches: Counter
    /// Processes replaced after a fault.
    let restarts: Counter
    /// Samples that ended as error results.
    let sampleErrors: Counter
    /// Wall time of one batch on one process (or one builtin call).
    let batchSeconds: Metrics.Timer

    /// - Parameter factory: nil means the bootstrapped `MetricsSystem.factory`.
    init(stage: String, factory: (any MetricsFactory)?) {
        let factory = factory ?? MetricsSystem.factory
        let dimensions = [("stage", stage)]
        batches = Counter(label: "flotilla_predictor_batches_total", dimensions: dimensions, factory: factory)
        restarts = Counter(label: "flotilla_predictor_restarts_total", dimensions: dimensions, factory: factory)
        sampleErrors = Counter(label: "flotilla_predictor_sample_errors_total", dimensions: dimensions, factory: factory)
        batchSeconds = Metrics.Timer(label: "flotilla_predictor_batch_seconds", dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
    }
}
