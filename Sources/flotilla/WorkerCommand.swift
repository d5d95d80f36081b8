import ArgumentParser
import FlotillaCore
import FlotillaHTTP
import FlotillaWorker
import Foundation
import ServiceLifecycle

/// `flotilla worker`: one member of the job's fleet. Usually started by the controller's pod backend.
struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Run one worker of a submitted job: take shards, run the model stages, publish results.",
        discussion: """
            SIGTERM or SIGINT drains the worker: it finishes the shards it is running, takes no new \
            ones, commits and exits 0. A fatal Kafka error exits 1 after flushing, for a supervisor \
            to replace the worker. Usually started by `flotilla controller` (backend local); start \
            it yourself with `--backend external`, one per host or pod. With --http-address (or \
            $FLOTILLA_HTTP_ADDRESS) it serves its own /metrics (predictor batches and latency per \
            stage) and /healthz.

            Example: flotilla worker myjob --brokers 127.0.0.1:9092 --worker-id w7
            """
    )

    @Argument(help: "The job id (the last line `flotilla submit` printed).")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: JobTopicOptions

    @Option(name: .customLong("worker-id"), help: "Stable id of this worker slot (names its transactional id). Default: host-pid.")
    var workerID: String?

    @OptionGroup var http: HTTPOptions

    @Option(help: "Shards processed at once (default: stages + 1 or 2 per process of the largest pool, whichever is more; at least 2).")
    var slots: Int?

    @Option(help: "Unstarted shards held beyond the running ones (default: slots).")
    var prefetch: Int?

    @Option(help: "Accelerators to hand to predictor processes, comma-separated ids (e.g. 0,1,2,3); each process of a stage with `devices: N` gets N of its own as CUDA_VISIBLE_DEVICES. Default: this process's CUDA_VISIBLE_DEVICES, else none.")
    var devices: String?

    @Option(help: "Predictor processes all stages may run together when their pools grow past their minimums (default: this machine's cores). Minimum pools always run.")
    var cores: Int?

    func validate() throws {
        if let slots, slots < 1 { throw ValidationError("--slots must be at least 1") }
        if let prefetch, prefetch < 0 { throw ValidationError("--prefetch must be 0 or more") }
        if let cores, cores < 1 { throw ValidationError("--cores must be at least 1") }
        if workerID == ControllerHeartbeat.key { throw ValidationError("--worker-id \(ControllerHeartbeat.key) is reserved for the controller") }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            Self.keepFreedMemory()
            let connection = try kafka.connection()
            var options = WorkerOptions(job: try validatedJobID(job), workerID: workerID ?? WorkerOptions.defaultWorkerID(),
                                        brokers: connection.bootstrapServers, topicPrefix: try topics.validated())
            options.kafkaProperties = connection.properties
            options.slots = slots
            options.prefetch = prefetch
            options.cores = cores
            options.devices = devices.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            let registry = CommandMetrics.bootstrap()
            let logger = CommandLogging.logger("flotilla.worker")
            let worker = Worker(options: options, logger: logger)
            // The server first: a group stops its services in reverse order, so a draining worker
            // keeps its metrics served until it is done.
            var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
            if let settings = try http.settings(always: false) {
                let server = OperatorServer(settings: settings, logger: logger, onListening: { [id = options.workerID] address in
                    printError("flotilla worker \(id): metrics at \(address)/metrics")
                }) { router in
                    router.get("/metrics") { _, _ in
                        OperatorServer.text(registry.emitToString(), type: "text/plain; version=0.0.4; charset=utf-8")
                    }
                    router.get("/healthz") { _, _ in OperatorServer.text("ok\n") }
                }
                services.append(.init(service: server, failureTerminationBehavior: .gracefullyShutdownGroup))
            }
            // SIGTERM or SIGINT shuts the group down gracefully, which drains the worker.
            services.append(.init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup,
                                  failureTerminationBehavior: .gracefullyShutdownGroup))
            let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            let exit = worker.exit ?? .finished("stopped")
            printError("flotilla worker \(options.workerID): \(exit)")
        }
    }

    /// A worker frees and allocates the same large buffers for every shard (its bytes, its frames,
    /// its results record). By default glibc maps the largest afresh and hands freed memory back to
    /// the kernel, and each reuse then pays a page fault every 4 KiB: a fortieth of the worker's CPU
    /// on a fast model. Kept in the heap, they are reused; the worker's peak stays what its shards
    /// in flight need (`tools/bench/memory`).
    static func keepFreedMemory() {
        #if canImport(Glibc)
        // `mallopt` is in <malloc.h>, which Swift's Glibc module does not import.
        typealias MallOpt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: MallOpt.self)
        let (mmapThreshold, trimThreshold): (Int32, Int32) = (-3, -1)  // M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
        _ = mallopt(mmapThreshold, 32 << 20)
        _ = mallopt(trimThreshold, 64 << 20)
        #endif
    }
}
