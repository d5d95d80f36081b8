import CRdKafka

/// Transactions: records and consumer offsets committed atomically. Errors carry librdkafka's
/// classes: `isRetriable` (call again), `requiresAbort` (abort, rewind, redo), `isFatal` (exit).
extension KafkaProducer {
    /// Registers the `transactional.id` with the coordinator, fencing older instances of it.
    public func initTransactions(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("init transactions") { rd_kafka_init_transactions($0, KafkaClient.timeoutMs(timeout)) }
    }

    public func beginTransaction() throws(KafkaError) {
        try KafkaError.check(rd_kafka_begin_transaction(client.handle), "begin transaction")
    }

    /// Adds consumer offsets (the next offset to read, per partition) to the current transaction.
    public func sendOffsetsToTransaction(_ offsets: [TopicPartitionOffset], groupMetadata: ConsumerGroupMetadata,
                                         timeout: Duration = .seconds(30)) async throws(KafkaError) {
        guard !offsets.isEmpty else { return }
        try await transactionCall("send offsets to transaction") { handle in
            let list = TopicPartitionList(offsets)
            return rd_kafka_send_offsets_to_transaction(handle, list.pointer, groupMetadata.pointer, KafkaClient.timeoutMs(timeout))
        }
    }

    public func commitTransaction(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("commit transaction") { rd_kafka_commit_transaction($0, KafkaClient.timeoutMs(timeout)) }
    }

    public func abortTransaction(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("abort transaction") { rd_kafka_abort_transaction($0, KafkaClient.timeoutMs(timeout)) }
    }

    private func transactionCall(_ what: String, _ call: @escaping @Sendable (OpaquePointer) -> OpaquePointer?) async throws(KafkaError) {
        let client = client
        let error = await client.blocking { UncheckedPointer(call(client.handle)) }
        try KafkaError.check(error.pointer, what)
    }
}

/// Carries a C pointer across a concurrency boundary; the pointee is owned by exactly one side at a time.
struct UncheckedPointer: @unchecked Sendable {
    let pointer: OpaquePointer?
    init(_ pointer: OpaquePointer?) { self.pointer = pointer }
}
