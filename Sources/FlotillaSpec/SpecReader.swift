import FlotillaCore

/// Walks a composed job spec into a `JobConfig`, validating as it goes. Internal to the loader.
struct SpecReader {
    /// Absolute folder relative paths resolve against.
    let base: String
    /// Accepted builtin predictor names, or nil for any well-formed name.
    let builtins: Set<String>?
    /// Inline samples seen so far across all inline inputs: numbering of `inline:<n>` ids and
    /// the duplicate-id check.
    var inlineCount = 0
    var inlineIDs: [String: String] = [:]

    init(base: String, builtins: Set<String>?) {
        self.base = base
        self.builtins = builtins
    }

    mutating func read(_ root: SpecNode) throws(FlotillaError) -> JobConfig {
        let spec = try root.mapping(allowed: JobSpecLoader.topLevelKeys)

        let job: String
        if let node = spec["job"] {
            job = try node.nonEmptyString()
            if let problem = JobSpecLoader.problem(withJobID: job) { throw node.error(problem) }
        } else {
            job = JobSpecLoader.generateJobID()
        }

        let inputs = try readInputs(spec.required("inputs"))
        var shard = try spec["shard"].map(readShard) ?? ShardConfig()
        let stages = try readStages(spec.required("stages"))
        let outputs = try spec["outputs"].map(readOutputs) ?? OutputConfig()
        let workers = try spec["workers"].map(readWorkers) ?? FleetConfig()
        let faults = try spec["faults"].map(readFaults) ?? FaultConfig()
        let delivery = try spec["delivery"].map(readDelivery) ?? .exactlyOnce
        let kafka = try spec["kafka"].map(readKafka) ?? KafkaConfig()
        let mode = try spec["mode"].map(readMode)
        // Coherent limits: unless set, a sample may be as large as a result record can carry.
        if try spec["shard"]?.mapping(allowed: ["samples", "maxSampleBytes"])["maxSampleBytes"] == nil {
            shard.maxSampleBytes = ShardConfig.defaultMaxSampleBytes(maxMessageBytes: kafka.maxMessageBytes)
        }

        return JobConfig(
            job: job, inputs: inputs, shard: shard, stages: stages, outputs: outputs,
            workers: workers, faults: faults, delivery: delivery, kafka: kafka, mode: mode, baseDirectory: base)
    }

    // MARK: Sections

    func readShard(_ node: SpecNode) throws(FlotillaError) -> ShardConfig {
        let map = try node.mapping(allowed: ["samples", "maxSampleBytes"])
        var config = ShardConfig()
        if let samples = map["samples"] { config.samples = try positive(samples) }
        if let bytes = map["maxSampleBytes"] { config.maxSampleBytes = try positive(bytes) }
        return config
    }

    mutating func readStages(_ node: SpecNode) throws(FlotillaError) -> [StageConfig] {
        let elements = try node.sequence()
        if elements.isEmpty { throw node.error("must list at least one stage") }
        var stages: [StageConfig] = []
        var namePaths: [String: String] = [:]
        for element in elements {
            let stage = try readStage(element)
            if let earlier = namePaths[stage.name] {
                throw (try element.mapping(allowed: Self.stageKeys).required("name"))
                    .error("'\(stage.name)' is already the name of \(earlier); stage names must be unique")
            }
            namePaths[stage.name] = element.path
            stages.append(stage)
        }
        return stages
    }

    static let stageKeys = ["name", "predictor", "builtin", "batch", "processes", "timeout", "startTimeout", "env", "passEnv", "devices"]

    func readStage(_ node: SpecNode) throws(FlotillaError) -> StageConfig {
        let map = try node.mapping(allowed: Self.stageKeys)
        let nameNode = try map.required("name")
        let name = try nameNode.nonEmptyString()
        if let problem = Self.problem(withName: name) { throw nameNode.error(problem) }

        let predictor: PredictorKind
        switch (map["predictor"], map["builtin"]) {
        case (.some, .some):
            throw node.error("has both predictor and builtin; give exactly one")
        case (nil, nil):
            throw node.error("needs either predictor (a command as a list, e.g. [python3, predict.py]) or builtin (e.g. identity)")
        case (let argvNode?, nil):
            let argv = try argvNode.stringList()
            if argv.isEmpty { throw argvNode.error("must not be empty: give the command and its arguments") }
            if argv.contains(where: \.isEmpty) { throw argvNode.error("must not contain empty entries") }
            predictor = .command(SpecPaths.resolveArguments(argv, against: base))
        case (nil, let builtinNode?):
            let builtin = try builtinNode.nonEmptyString()
            if let builtins, !builtins.contains(builtin) {
                throw builtinNode.error("'\(builtin)' is not a builtin predictor; known: \(builtins.sorted().joined(separator: ", "))")
            }
            if let problem = Self.problem(withName: builtin) { throw builtinNode.error(problem) }
            predictor = .builtin(builtin)
        }

        var stage = StageConfig(name: name, predictor: predictor)
        if let batch = map["batch"] { stage.batch = try positive(batch) }
        if let processes = map["processes"] { stage.processes = try readProcesses(processes) }
        if let timeout = map["timeout"] { stage.timeout = try positive(duration: timeout) }
        if let start = map["startTimeout"] { stage.startTimeout = try positive(duration: start) }
        if let envNode = map["env"] {
            stage.env = try envNode.stringMap()
            if let bad = stage.env.keys.sorted().first(where: { $0.contains("=") || $0.contains("\0") }) {
                throw envNode.error("has the variable name '\(bad)', which may not contain '='")
            }
        }
        if let passNode = map["passEnv"] {
            stage.passEnv = try passNode.stringList()
            if let bad = stage.passEnv.first(where: { $0.isEmpty || $0.contains("=") || $0.contains("\0") }) {
                throw passNode.error("has the variable name '\(bad)', which may not be empty or contain '='")
            }
        }
        if let devicesNode = map["devices"] {
            stage.devices = try devicesNode.int()
            if stage.devices < 0 { throw devicesNode.error("must be >= 0, not \(stage.devices)") }
            if case .builtin = predictor, stage.devices > 0 {
                throw devicesNode.error("is for predictor processes; a builtin runs inside the worker and gets no device")
            }
        }
        return stage
    }

    func readProcesses(_ node: SpecNode) throws(FlotillaError) -> ProcessRange {
        if case .scalar = node.node {
            let count = try positive(node)
            return ProcessRange(min: count, max: count)
        }
        let map = try node.mapping(allowed: ["min", "max"])
        let min = try map["min"].map(positive) ?? 1
        let maxNode = map["max"]
        let max = try maxNode.map(positive) ?? Swift.max(min, 1)
        if max < min {
            throw (maxNode ?? node).error("(\(max)) must be >= \(node.path).min (\(min))")
        }
        return ProcessRange(min: min, max: max)
    }

    func readOutputs(_ node: SpecNode) throws(FlotillaError) -> OutputConfig {
        let map = try node.mapping(allowed: ["results", "directory"])
        var config = OutputConfig()
        if let results = map["results"] { config.results = try results.bool() }
        if let directory = map["directory"] {
            config.directory = SpecPaths.resolve(try directory.nonEmptyString(), against: base)
        }
        if !config.results && config.directory == nil {
            throw node.error("sends results nowhere: set results: true or a directory")
        }
        return config
    }

    func readWorkers(_ node: SpecNode) throws(FlotillaError) -> FleetConfig {
        if case .scalar = node.node {
            let count = try positive(node)
            return FleetConfig(min: count, max: count)
        }
        let map = try node.mapping(allowed: ["min", "max", "idleTimeout"])
        var min = 1
        if let minNode = map["min"] {
            min = try minNode.int()
            if min < 0 { throw minNode.error("must be >= 0") }
        }
        let maxNode = map["max"]
        let max = try maxNode.map(positive) ?? Swift.max(4, min)
        if max < min {
            throw (maxNode ?? node).error("(\(max)) must be >= workers.min (\(min))")
        }
        return FleetConfig(min: min, max: max, idleTimeout: try map["idleTimeout"].map { node throws(FlotillaError) in try positive(duration: node) })
    }

    func readFaults(_ node: SpecNode) throws(FlotillaError) -> FaultConfig {
        let map = try node.mapping(allowed: ["maxAttempts", "heartbeat", "workerTimeout", "shardTimeout", "speculative", "maxErrorRate"])
        var config = FaultConfig()
        if let attempts = map["maxAttempts"] {
            config.maxAttempts = try positive(attempts)
            if config.maxAttempts > 100 { throw attempts.error("must be <= 100") }
        }
        if let heartbeat = map["heartbeat"] { config.heartbeat = try positive(duration: heartbeat) }
        if let timeout = map["workerTimeout"] { config.workerTimeout = try positive(duration: timeout) }
        if let timeout = map["shardTimeout"] { config.shardTimeout = try positive(duration: timeout) }
        if let speculative = map["speculative"] { config.speculative = try speculative.bool() }
        if let rate = map["maxErrorRate"] {
            config.maxErrorRate = try rate.number()
            if !(0...1).contains(config.maxErrorRate) { throw rate.error("must be between 0 and 1 (a fraction of the samples)") }
        }
        let heartbeat = SpecDuration.format(config.heartbeat)
        if config.workerTimeout <= config.heartbeat {
            throw (map["workerTimeout"] ?? map["heartbeat"] ?? node).plainError(
                "faults.workerTimeout (\(SpecDuration.format(config.workerTimeout))) must be longer than faults.heartbeat (\(heartbeat)), or a worker is declared lost between two heartbeats")
        }
        if config.shardTimeout <= config.heartbeat {
            throw (map["shardTimeout"] ?? map["heartbeat"] ?? node).plainError(
                "faults.shardTimeout (\(SpecDuration.format(config.shardTimeout))) must be longer than faults.heartbeat (\(heartbeat))")
        }
        return config
    }

    func readMode(_ node: SpecNode) throws(FlotillaError) -> JobMode {
        let text = try node.nonEmptyString()
        guard let mode = JobMode(rawValue: text) else { throw node.error("must be closed or open, not '\(text)'") }
        return mode
    }

    func readDelivery(_ node: SpecNode) throws(FlotillaError) -> DeliveryMode {
        let text = try node.nonEmptyString()
        guard let mode = DeliveryMode(rawValue: text) else {
            throw node.error("must be exactly-once or at-least-once, not '\(text)'")
        }
        return mode
    }

    func readKafka(_ node: SpecNode) throws(FlotillaError) -> KafkaConfig {
        let map = try node.mapping(allowed: ["brokers", "topicPrefix", "partitions", "resultPartitions", "replicationFactor", "maxMessageBytes", "properties"])
        var config = KafkaConfig()
        if let brokersNode = map["brokers"] {
            let brokers = try brokersNode.nonEmptyString()
            if let problem = Self.problem(withBrokers: brokers) { throw brokersNode.error(problem) }
            config.brokers = brokers
        }
        if let prefixNode = map["topicPrefix"] {
            let prefix = try prefixNode.nonEmptyString()
            if let problem = TopicNames.problem(withPrefix: prefix) { throw prefixNode.error(problem) }
            config.topicPrefix = prefix
        }
        if let partitions = map["partitions"] {
            config.partitions = try partitions.int()
            if config.partitions < 0 { throw partitions.error("must be >= 0 (0 means 2 x workers.max)") }
            if config.partitions > 10_000 { throw partitions.error("must be <= 10000") }
        }
        if let partitions = map["resultPartitions"] {
            let count = try positive(partitions)
            if count > 10_000 { throw partitions.error("must be <= 10000") }
            config.resultPartitions = count
        }
        if let factor = map["replicationFactor"] { config.replicationFactor = try positive(factor) }
        if let bytes = map["maxMessageBytes"] {
            config.maxMessageBytes = try bytes.int()
            if config.maxMessageBytes < 1_000 || config.maxMessageBytes > 1_000_000_000 {
                throw bytes.error("must be between 1000 and 1000000000, not \(config.maxMessageBytes)")
            }
        }
        if let propertiesNode = map["properties"] {
            config.properties = try propertiesNode.stringMap()
            for key in config.properties.keys.sorted() {
                if let why = KafkaConfig.reservedProperties[key] {
                    throw propertiesNode.error("may not set '\(key)': \(why)")
                }
                if KafkaConfig.isSecret(key) {
                    throw propertiesNode.error("may not hold the secret '\(key)': the spec is copied into the job's manifest on Kafka; put it in a properties file named by FLOTILLA_KAFKA_PROPERTIES_FILE (or --kafka-properties-file) on every machine that runs a Flotilla command")
                }
            }
        }
        return config
    }

    // MARK: Checks

    func positive(_ node: SpecNode) throws(FlotillaError) -> Int {
        let value = try node.int()
        if value <= 0 { throw node.error("must be > 0") }
        return value
    }

    func positive(duration node: SpecNode) throws(FlotillaError) -> Duration {
        let value = try node.duration()
        if value <= .zero { throw node.error("must be > 0") }
        return value
    }

    /// Stage and builtin names: `[A-Za-z0-9._-]`, at most 64 characters.
    static func problem(withName name: String) -> String? {
        if name.count > 64 { return "must be at most 64 characters" }
        if let bad = name.first(where: { !($0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0))) }) {
            return "may hold only letters, digits, '.', '_' and '-', not '\(bad)'"
        }
        return nil
    }

    /// Broker lists: "host:port[,host:port...]".
    static func problem(withBrokers brokers: String) -> String? {
        for entry in brokers.split(separator: ",", omittingEmptySubsequences: false) {
            let broker = entry.trimmingWhitespace()
            guard let colon = broker.lastIndex(of: ":"), colon != broker.startIndex,
                  let port = Int(broker[broker.index(after: colon)...]), (1...65_535).contains(port) else {
                return "must be host:port[,host:port...], not '\(brokers)'"
            }
        }
        return nil
    }
}
