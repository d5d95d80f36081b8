import FlotillaCore
import Logging
import RdKafka

/// What a worker's group consumer sees on the shards topic.
public enum ShardEvent: Sendable {
    /// A shard record (decode it with `TopicRecord.decode(ShardRecord.self)`).
    case record(TopicRecord)
    case assigned([TopicPartition])
    /// `lost`: taken away without a chance to commit (the session expired).
    case revoked([TopicPartition], lost: Bool)
    /// A consumer error that does not end the consumer (logged).
    case error(KafkaError)
}

/// A worker's Kafka clients for one job: its group consumer on the shards topic, the producer
/// that publishes finished shards (in transactions in exactly-once mode), the tails of the
/// control and acks topics, and a reader for single shard records named by `take` commands.
public final class WorkerLink: Sendable {
    public let topics: TopicNames
    /// Whether finished shards are published in transactions (exactly-once mode on a broker that
    /// can); false after a fall back to at-least-once.
    public var transactional: Bool { publisher.transactional }
    private let consumer: KafkaConsumer
    private let resultProducer: KafkaProducer
    /// Heartbeats and dead letters: outside transactions, so they flow while a transaction is open.
    private let records: RecordPublisher
    private let commandReader: RecordReader
    private let acksReader: RecordReader
    /// Reads single shard records named by `take` commands (group-less).
    private let expressReader: KafkaConsumer
    private let publisher: ShardPublisher
    private let logger: Logger

    /// Joins the job's worker group first (the join takes seconds on some brokers: what `prepare`
    /// does meanwhile, e.g. starting predictors, overlaps it), then makes the other clients.
    public static func connect(connection: BrokerConnection, config: JobConfig, workerID: String, logger: Logger,
                               prepare: () async throws(FlotillaError) -> Void) async throws(FlotillaError) -> WorkerLink {
        let topics = config.topics
        let consumer = try connection.consumer(groupID: topics.workerGroup, pace: .group, isolation: .committed, logger: logger) { consumer in
            consumer.sessionTimeout = .seconds(6)
            // What the worker holds is bounded by polling only what its queue has room for. The
            // fetcher must refill at once when a slot frees: by default it backs off for up to a
            // second after pauses and full local queues, which starves the predictors.
            for (key, value) in ["fetch.queue.backoff.ms": "10", "fetch.error.backoff.ms": "50"] {
                consumer.client.properties[key] = consumer.client.properties[key] ?? value
            }
        }
        do {
            try consumer.subscribe([topics.shards])
        } catch {
            throw FlotillaError(.kafka, "cannot join the worker group of job '\(config.job)'", underlying: error)
        }
        try await prepare()
        do {
            // Commands (the warm start's takes among them) within a quarter second; acks only save
            // work. Both readers start while the transactional producer initialises.
            let commandReader = try RecordReader(connection: connection, pace: .commands, isolation: .uncommitted, logger: logger)
            let acksReader = try RecordReader(connection: connection, pace: .hints, isolation: .committed, logger: logger)
            let catalog = try await BrokerAdmin(connection: connection, logger: logger).topics()
            if let missing = [topics.control, topics.acks].first(where: { catalog[$0] == nil }) {
                throw FlotillaError(.kafka, "topic \(missing) does not exist on \(connection.bootstrapServers)")
            }
            async let commandsReading = commandReader.read([topics.control], in: catalog)
            async let acksReading = acksReader.read([topics.acks], in: catalog)
            let (resultProducer, transactional) = try await makeResultProducer(connection: connection, config: config, workerID: workerID, logger: logger)
            let resultPartitions = await resultProducer.loadMetadata(for: [topics.results, topics.acks])[topics.results]
            let records = try RecordPublisher(connection: connection, logger: logger)
            _ = try await (commandsReading, acksReading)
            // A take should not wait out an empty fetch.
            let expressReader = try connection.consumer(pace: .catchUp, isolation: .committed, logger: logger)
            await expressReader.loadMetadata(for: [topics.shards])  // its first take should not wait for it
            return WorkerLink(
                topics: topics, consumer: consumer, resultProducer: resultProducer, records: records, commandReader: commandReader,
                acksReader: acksReader, expressReader: expressReader,
                publisher: ShardPublisher(producer: resultProducer, consumer: consumer, transactional: transactional, topics: topics,
                                          publishResults: config.outputs.results, maxMessageBytes: config.kafka.maxMessageBytes,
                                          resultPartitions: resultPartitions),
                logger: logger)
        } catch let error as FlotillaError {
            throw error
        } catch {
            throw FlotillaError(.kafka, "cannot start the worker's Kafka clients", underlying: error)
        }
    }

    private init(topics: TopicNames, consumer: KafkaConsumer, resultProducer: KafkaProducer, records: RecordPublisher,
                 commandReader: RecordReader, acksReader: RecordReader, expressReader: KafkaConsumer, publisher: ShardPublisher, logger: Logger) {
        self.topics = topics
        self.consumer = consumer
        self.resultProducer = resultProducer
        self.records = records
        self.commandReader = commandReader
        self.acksReader = acksReader
        self.expressReader = expressReader
        self.publisher = publisher
        self.logger = logger
    }

    /// A transactional producer in exactly-once mode; falls back to at-least-once (logged once)
    /// when the broker cannot do transactions.
    private static func makeResultProducer(connection: BrokerConnection, config: JobConfig, workerID: String,
                                           logger: Logger) async throws -> (KafkaProducer, Bool) {
        var producerConfig = KafkaProducerConfiguration(client: connection.client)
        producerConfig.maxMessageBytes = config.kafka.maxMessageBytes
        guard config.delivery == .exactlyOnce else { return (try KafkaProducer(configuration: producerConfig, logger: logger), false) }
        producerConfig.transactionalID = "\(config.topics.prefix).\(config.job).\(workerID)"
        let producer = try KafkaProducer(configuration: producerConfig, logger: logger)
        let failure: KafkaError
        do {
            try await producer.initTransactions(timeout: .seconds(20))
            return (producer, true)
        } catch {
            failure = error
        }
        if failure.isFatal || failure.name == "_TIMED_OUT" { throw failure }
        logger.warning("the broker does not support transactions; falling back to at-least-once delivery (the reader rule still gives exactly-once results)",
                       metadata: ["flotilla.error": "\(failure)"])
        producerConfig.transactionalID = nil
        return (try KafkaProducer(configuration: producerConfig, logger: logger), false)
    }

    // MARK: intake

    /// Up to `maxEvents` events of the group consumer, waiting up to `timeout` for the first.
    /// Records and rebalances end the wait at once, `interruptPolls` too. Throws only a fatal
    /// consumer error.
    public func pollShards(maxEvents: Int, timeout: Duration) async throws(KafkaError) -> [ShardEvent] {
        try await consumer.poll(maxEvents: maxEvents, timeout: timeout).compactMap { event in
            switch event {
            case .message(let message): .record(TopicRecord(message))
            case .assigned(let partitions): .assigned(partitions)
            case .revoked(let partitions, let lost): .revoked(partitions, lost: lost)
            case .error(let error): .error(error)
            case .endOfPartition: nil
            }
        }
    }

    /// New records of the control topic (waiting up to `timeout` for one) and of the acks topic
    /// (what is there).
    public func pollLedger(timeout: Duration) async throws(FlotillaError) -> [TopicRecord] {
        let events = try await commandReader.poll(timeout: timeout) + acksReader.poll(timeout: .zero)
        return events.compactMap(\.record)
    }

    /// Makes the intake's and the ledger's blocked polls return now (a stop or drain should not
    /// wait out their one-second waits).
    public func interruptPolls() {
        consumer.interruptPoll()
        commandReader.interruptPoll()
    }

    /// The shard records at these (partition, offset) positions of the shards topic, read in one
    /// pass, in the order asked; those that cannot be read within 5 s are left out.
    public func fetchShardRecords(_ positions: [(partition: Int32, offset: Int64)]) async -> [TopicRecord] {
        let places = positions.map { TopicPartitionOffset(topics.shards, $0.partition, $0.offset) }
        var wanted = Set(places)
        let starts = Dictionary(positions.map { ($0.partition, $0.offset) }, uniquingKeysWith: min)
        var found: [TopicPartitionOffset: TopicRecord] = [:]
        do {
            try await expressReader.assign(starts.map { TopicPartitionOffset(topics.shards, $0.key, $0.value) })
            let deadline = ContinuousClock.now + .seconds(5)
            while !wanted.isEmpty && ContinuousClock.now < deadline {
                for case .message(let message) in try await expressReader.poll(timeout: .milliseconds(100)) {
                    let place = TopicPartitionOffset(topics.shards, message.partition, message.offset)
                    if wanted.remove(place) != nil { found[place] = TopicRecord(message) }
                }
            }
        } catch {}
        // Unassigned again: an assigned reader keeps fetching (100 fetches/s at its wait).
        try? await expressReader.assign([])
        return places.compactMap { found[$0] }
    }

    // MARK: publishing

    /// Publishes finished shards with the consumer offsets they advance (see `ShardPublisher`).
    public func publish<Shard: PublishableShard>(_ shards: [Shard], offsets: [TopicPartitionOffset]) async throws(KafkaError) {
        try await publisher.publish(shards, offsets: offsets)
    }

    /// Commits offsets alone (skipped, dead-lettered or superseded records).
    public func commitOffsets(_ offsets: [TopicPartitionOffset]) async throws(KafkaError) {
        try await publisher.commitOffsets(offsets)
    }

    /// Commits a transaction holding a settle record alone (exactly-once mode only).
    public func settle(_ record: SettleRecord) async throws(KafkaError) {
        try await publisher.settle(record)
    }

    /// Queues a heartbeat without waiting for it.
    public func send(_ heartbeat: HeartbeatRecord) throws(KafkaError) {
        try records.enqueue(OutgoingRecord(heartbeat, topic: topics.heartbeats, key: heartbeat.worker))
    }

    /// Sends an undecodable or foreign shards-topic record to the dead-letter topic with the reason.
    public func deadLetter(_ record: TopicRecord, reason: String) async {
        logger.warning("shard record dead-lettered", metadata: ["flotilla.reason": "\(reason)", "flotilla.offset": "\(record.partition)@\(record.offset)"])
        let letter = DeadLetterRecord(job: topics.job, reason: reason, raw: record.value, topic: record.topic,
                                      partition: Int(record.partition), offset: record.offset, from: "worker")
        do {
            try await records.send(OutgoingRecord(letter, topic: topics.dlq, key: record.key ?? "unknown"))
        } catch {
            logger.error("cannot dead-letter a record", metadata: ["flotilla.error": "\(error)"])
        }
    }

    /// Leaves the group (unless `leaveGroup` is false: closing waits for a group join in progress
    /// to finish, ~3 s for a worker stopped before its first assignment) and flushes what is pending.
    public func shutdown(leaveGroup: Bool) async {
        if leaveGroup { try? await consumer.close() }
        await records.flush(timeout: .seconds(5))
        try? await resultProducer.flush(timeout: .seconds(5))
        await commandReader.close()
        await acksReader.close()
        try? await expressReader.close()
    }

    /// One last heartbeat from a worker that could not start (best effort, 3 s at most): the
    /// operator sees the reason at once, and the controller can stop a job no restart will mend.
    public static func reportStartFailure(_ heartbeat: HeartbeatRecord, topics: TopicNames, connection: BrokerConnection,
                                          logger: Logger) async {
        do throws(FlotillaError) {
            let producer = try connection.producer(logger: logger)
            do {
                try producer.enqueue(OutgoingRecord(heartbeat, topic: topics.heartbeats, key: heartbeat.worker).message)
                try await producer.flush(timeout: .seconds(3))
            } catch {
                throw FlotillaError(.kafka, "cannot send the heartbeat", underlying: error)
            }
        } catch {
            logger.warning("cannot report the start failure to the controller", metadata: ["flotilla.error": "\(error)"])
        }
    }
}
