/// Every metric Flotilla exports, `flotilla_<component>_<thing>_<unit>`, with its help text.
/// Dimensions are labels: `job`, `state`, `reason`, `worker`, `stage`.
public enum MetricCatalog {
    /// Shards of the job by state (`job`, `state`: pending, queued, in-flight, failed, done, dead).
    public static let shards = "flotilla_controller_shards"
    /// Samples in done shards (`job`).
    public static let samples = "flotilla_controller_samples_total"
    /// Samples the job has, when known at submission (`job`).
    public static let expectedSamples = "flotilla_controller_expected_samples"
    /// Samples not yet done: the backlog (`job`).
    public static let backlog = "flotilla_controller_backlog_samples"
    /// Shard attempts published after the first (`job`, `reason`).
    public static let reEnqueues = "flotilla_controller_reenqueues_total"
    /// Workers replaced or restarted (`job`).
    public static let workerRestarts = "flotilla_controller_worker_restarts_total"
    /// Shards acked done more than once (`job`).
    public static let duplicates = "flotilla_controller_duplicates_total"
    /// Workers heard from within the worker timeout (`job`).
    public static let workers = "flotilla_controller_workers"
    /// Workers the fleet wants (`job`).
    public static let desiredWorkers = "flotilla_controller_desired_workers"
    /// Samples per second now, from the done count over the last 5 s (`job`).
    public static let throughput = "flotilla_controller_throughput_samples_per_second"
    /// Samples per second of one worker, from its heartbeat (`job`, `worker`).
    public static let workerThroughput = "flotilla_controller_worker_throughput_samples_per_second"
    /// Seconds left at the current rate (`job`); absent while unknown.
    public static let eta = "flotilla_controller_eta_seconds"
    /// How long the controller's last tick took (`job`).
    public static let tick = "flotilla_controller_tick_seconds"
    /// HTTP actions by name and result (`job`, `action`, `result`).
    public static let actions = "flotilla_controller_http_actions_total"
    /// Samples of done shards that ended as error results (`job`).
    public static let failedSamples = "flotilla_controller_failed_samples_total"
    /// One worker process's own CPU per finished sample (`job`, `worker`), from its heartbeat.
    public static let workerCPU = "flotilla_controller_worker_cpu_seconds_per_sample"
    /// The largest delay from a worker's heartbeat to the controller applying it (`job`).
    public static let heartbeatLag = "flotilla_controller_heartbeat_lag_seconds"

    /// The help text by metric name.
    public static let help: [String: String] = [
        shards: "Shards of the job by state.",
        samples: "Samples in done shards.",
        expectedSamples: "Samples the job has, when known at submission.",
        backlog: "Samples of the job not done yet.",
        reEnqueues: "Shard attempts published after the first, by reason.",
        workerRestarts: "Workers replaced or restarted.",
        duplicates: "Shards acked done more than once (ran twice).",
        workers: "Workers heard from within the worker timeout.",
        desiredWorkers: "Workers the fleet wants.",
        throughput: "Samples finished per second now: the controller's done count over the last 5 s.",
        workerThroughput: "Samples finished per second by one worker, from its last heartbeat.",
        eta: "Seconds left at the current rate.",
        tick: "How long the controller's last tick took.",
        actions: "Operator actions received over HTTP, by action and result.",
        failedSamples: "Samples of done shards that ended as error results.",
        workerCPU: "A worker process's own CPU seconds per finished sample (predictors excluded).",
        heartbeatLag: "The largest delay from a worker sending a heartbeat to the controller applying it, since the last snapshot.",
        "flotilla_predictor_batches_total": "Predictor batches answered, by stage.",
        "flotilla_predictor_restarts_total": "Predictor processes replaced after a fault, by stage.",
        "flotilla_predictor_sample_errors_total": "Samples that ended as error results, by stage.",
        "flotilla_predictor_batch_seconds": "Wall time of one predictor batch, by stage.",
    ]
}
