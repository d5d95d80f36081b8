import FlotillaHTTP
import Metrics
import Prometheus

/// The process's metrics: swift-metrics bootstrapped once, into the registry `/metrics` renders.
enum CommandMetrics {
    /// Every metric of this process.
    static let registry = PrometheusCollectorRegistry()

    /// Bootstraps `MetricsSystem` (once per process; later calls do nothing) and returns the registry.
    @discardableResult
    static func bootstrap() -> PrometheusCollectorRegistry {
        _ = bootstrapped
        return registry
    }

    private static let bootstrapped: Void = MetricsSystem.bootstrap(FlotillaMetricsFactory(registry: registry))
}
