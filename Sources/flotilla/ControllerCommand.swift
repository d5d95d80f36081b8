import ArgumentParser
import FlotillaController
import FlotillaCore
import FlotillaJobs
import FlotillaKafka
import Foundation
import Logging
import ServiceLifecycle

/// `flotilla controller JOB`: runs a submitted job to its end with a fleet of workers.
struct ControllerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Run a submitted job: start workers, detect failures, re-enqueue, balance, finish.",
        discussion: """
            Rebuilds its state from the job's topics, so it can be stopped and restarted at any time \
            (that is how a job is resumed). Shows progress on stderr like `run`. Serves a live \
            dashboard (/), /status, /metrics and /healthz over HTTP, on 127.0.0.1 and a free port \
            unless --http-address or --http-port say otherwise; POST /actions/scale?workers=N and \
            /actions/cancel need the bearer token ($FLOTILLA_HTTP_TOKEN or --http-token-file). \
            Exit status as for `run`: 0 every shard done, 3 some shards dead-lettered, 4 too many \
            failed samples, 2 bad input or a predictor that cannot start (or an unknown job, or one \
            another controller already runs), 1 anything else (including a cancelled job, or one \
            taken over by another controller). One controller runs a job at a time: a second one \
            refuses to start unless given --take-over.

            Example: flotilla controller myjob --brokers 127.0.0.1:9092 --workers 4
            """
    )

    @Argument(help: "The job id (the last line `flotilla submit` printed).")
    var job: String

    @OptionGroup var kafka: KafkaOptions
    @OptionGroup var topics: JobTopicOptions

    @Option(help: "Where workers run: local (child processes), external (started by you), kubernetes.")
    var backend: String = "local"

    @Option(name: .customLong("pod-template"), help: "kubernetes: the worker Pod manifest (YAML) each worker pod is made from (deploy/worker-pod.yaml).")
    var podTemplate: String?

    @Option(help: "kubernetes: the namespace of the worker pods (default: the service account's, else the kubeconfig context's, else default).")
    var namespace: String?

    @Option(help: "kubernetes: a kubeconfig file (default: in-cluster credentials when KUBERNETES_SERVICE_HOST is set, else $KUBECONFIG or ~/.kube/config).")
    var kubeconfig: String?

    @Option(help: "Workers to run (default: the job's workers.min); widens workers.min...workers.max to include it.")
    var workers: Int?

    @OptionGroup var http: HTTPOptions

    @Option(name: .customLong("log-dir"), help: "Folder for the workers' log files (default: a folder under the temporary directory).")
    var logDir: String?

    @Flag(help: "Print the final summary as one JSON object on stdout (human lines go to stderr).")
    var json = false

    @Flag(name: .customLong("take-over"), help: "Replace a controller that already runs the job (it stops its workers and exits) instead of refusing to start.")
    var takeOver = false

    func validate() throws {
        guard ["local", "external", "kubernetes"].contains(backend) else {
            throw ValidationError("--backend must be local, external or kubernetes, not '\(backend)'")
        }
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        if backend == "kubernetes", podTemplate == nil { throw ValidationError("--backend kubernetes needs --pod-template FILE (a worker Pod manifest, e.g. deploy/worker-pod.yaml)") }
        if backend != "kubernetes", podTemplate != nil || namespace != nil || kubeconfig != nil {
            throw ValidationError("--pod-template, --namespace and --kubeconfig are for --backend kubernetes")
        }
    }

    func run() async throws {
        try await exitOnFlotillaError {
            let job = try validatedJobID(job)
            let httpSettings = try http.settings(always: true)
            let connection = try kafka.connection()
            let prefix = try topics.validated()
            let logger = CommandLogging.logger("flotilla.controller")
            let pods: any PodBackend
            if backend == "kubernetes", let podTemplate {
                pods = try await kubernetesBackend(job: job, template: podTemplate, connection: connection, prefix: prefix, logger: logger)
            } else if backend == "local" {
                let folder = logDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("flotilla-\(job)-logs").path
                pods = try FleetLauncher.localBackend(job: job, brokers: connection.bootstrapServers, topicPrefix: prefix,
                                                      kafkaProperties: connection.properties, logDirectory: folder, logger: logger)
                printError("flotilla controller: worker logs in \(folder)")
            } else {
                pods = ExternalPodBackend()
            }
            var options = ControllerOptions(job: job, brokers: connection.bootstrapServers, topicPrefix: prefix, workers: workers,
                                            kafkaProperties: connection.properties)
            options.http = httpSettings
            options.manifestTimeout = connection.timeout
            options.takeOver = takeOver
            options.signer = try ManifestSignature.fromEnvironment()
            let service = ControllerService(options: options, backend: pods, logger: CommandLogging.kafkaLogger(),
                                            registry: CommandMetrics.bootstrap()) { address in
                printError("flotilla controller: status at \(address)/status")
                printError("flotilla controller: dashboard at \(address)/")
            }
            let ended: ControllerOutcome?
            do {
                ended = try await FleetLauncher.runWithProgress(service, totalSamples: nil, logger: logger)
            } catch {
                await pods.close()
                throw error
            }
            await pods.close()
            guard let outcome = ended else {
                printError("flotilla controller: stopped before the job finished; run the same command again to carry on")
                throw ExitCode(1)
            }
            FleetLauncher.report(outcome, command: "flotilla controller", json: json)
            if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
        }
    }

    /// Worker pods in a Kubernetes namespace. Kafka properties are not copied into the pods (a pod
    /// spec is readable by anyone who can read pods): the template mounts them, see docs/OPERATIONS.md.
    private func kubernetesBackend(job: String, template path: String, connection: BrokerConnection, prefix: String,
                                   logger: Logger) async throws(FlotillaError) -> KubernetesPodBackend {
        let template = try PodTemplate.load(path: path)
        let credentials = try KubernetesCredentials.resolve(kubeconfig: kubeconfig)
        if !connection.properties.isEmpty {
            printError("flotilla controller: note: worker pods get Kafka properties only from what their template mounts (\(KafkaOptions.propertiesFileVariable)), never from this controller")
        }
        let arguments = ["worker", job, "--brokers", connection.bootstrapServers, "--prefix", prefix]
        let backend = try await KubernetesPodBackend.connect(job: job, baseArguments: arguments, template: template,
                                                             credentials: credentials, namespace: namespace, logger: logger)
        printError("flotilla controller: worker pods in namespace \(backend.namespace) at \(credentials.server)")
        return backend
    }
}
