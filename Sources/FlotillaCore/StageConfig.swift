import Foundation

/// One model stage: a predictor (external command or builtin) with its batching and pool settings.
public struct StageConfig: Sendable, Hashable, Codable {
    /// Unique within the job: `[A-Za-z0-9._-]`, at most 64 characters. Used in metrics and results.
    public var name: String
    /// What runs the model.
    public var predictor: PredictorKind
    /// Samples per request to the predictor. Default 32; must be >= 1.
    public var batch: Int
    /// The predictor process pool's size range. Default min 1, max 1.
    public var processes: ProcessRange
    /// How long one batch may take before the process is deemed hung. Default 60s; must be > 0.
    public var timeout: Duration
    /// How long a new predictor process may take to finish its handshake (model loading).
    /// Default 60s; must be > 0.
    public var startTimeout: Duration
    /// Extra environment variables for predictor processes. Default none. They are part of the
    /// manifest on Kafka: secrets go in `passEnv`.
    public var env: [String: String]
    /// Names of the worker's own environment variables passed on to predictor processes (API
    /// keys, tokens): only the names enter the manifest. Default none.
    public var passEnv: [String] = []
    /// Accelerators each predictor process needs (`CUDA_VISIBLE_DEVICES` gets its own slice of the
    /// worker's devices, never shared with another process). Default 0.
    public var devices = 0

    public static let defaultBatch = 32
    public static let defaultTimeout: Duration = .seconds(60)
    public static let defaultStartTimeout: Duration = .seconds(60)

    public init(
        name: String,
        predictor: PredictorKind,
        batch: Int = StageConfig.defaultBatch,
        processes: ProcessRange = ProcessRange(),
        timeout: Duration = StageConfig.defaultTimeout,
        startTimeout: Duration = StageConfig.defaultStartTimeout,
        env: [String: String] = [:]
    ) {
        self.name = name
        self.predictor = predictor
        self.batch = batch
        self.processes = processes
        self.timeout = timeout
        self.startTimeout = startTimeout
        self.env = env
    }

    private enum CodingKeys: String, CodingKey {
        case name, predictor, builtin, batch, processes, timeout, startTimeout, env, passEnv, devices
    }

    // Encoded like the YAML: either `predictor: [argv...]` or `builtin: name`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        if let argv = try container.decodeIfPresent([String].self, forKey: .predictor) {
            predictor = .command(argv)
        } else {
            predictor = .builtin(try container.decode(String.self, forKey: .builtin))
        }
        batch = try container.decode(Int.self, forKey: .batch)
        processes = try container.decode(ProcessRange.self, forKey: .processes)
        timeout = try container.decodeDuration(forKey: .timeout)
        startTimeout = try container.decodeDuration(forKey: .startTimeout)
        env = try container.decodeIfPresent([String: String].self, forKey: .env) ?? [:]
        passEnv = try container.decodeIfPresent([String].self, forKey: .passEnv) ?? []
        devices = try container.decodeIfPresent(Int.self, forKey: .devices) ?? 0
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        switch predictor {
        case .command(let argv): try container.encode(argv, forKey: .predictor)
        case .builtin(let builtin): try container.encode(builtin, forKey: .builtin)
        }
        try container.encode(batch, forKey: .batch)
        try container.encode(processes, forKey: .processes)
        try container.encodeDuration(timeout, forKey: .timeout)
        try container.encodeDuration(startTimeout, forKey: .startTimeout)
        try container.encode(env, forKey: .env)
        if !passEnv.isEmpty { try container.encode(passEnv, forKey: .passEnv) }
        if devices > 0 { try container.encode(devices, forKey: .devices) }
    }
}

extension StageConfig {
    /// The predictor processes' extra variables: `env`, and the `passEnv` variables this process has.
    public func environment(_ own: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
        var result = env
        for name in passEnv { if let value = own[name] { result[name] = value } }
        return result
    }
}

/// What runs a stage's model.
public enum PredictorKind: Sendable, Hashable {
    /// An external process speaking the predictor protocol on stdin/stdout. The argv's relative
    /// path-like entries are already resolved against the spec's folder.
    case command([String])
    /// A predictor built into Flotilla, run in-process, by name (e.g. "identity").
    case builtin(String)
}

/// The size range of a stage's predictor process pool.
public struct ProcessRange: Sendable, Hashable, Codable {
    /// Processes kept running. Default 1; must be >= 1.
    public var min: Int
    /// Most processes the in-node scheduler may start. Default 1; must be >= min.
    public var max: Int

    public init(min: Int = 1, max: Int = 1) {
        self.min = min
        self.max = max
    }
}
