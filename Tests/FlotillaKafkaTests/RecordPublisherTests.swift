@testable import FlotillaKafka
import Logging
import RdKafka
import Testing

/// A publisher's producer is replaced after a fatal error, once per failed producer, at most
/// `replacementLimit` times. (Making librdkafka raise a fatal error needs its test API, which the
/// product does not expose; the send path that calls `replace` is covered by reading it.)
@Suite("Record publisher: producer replacement")
struct RecordPublisherTests {
    @Test("a failed producer is replaced once; a stale report changes nothing; the limit holds")
    func replacement() throws {
        let publisher = try RecordPublisher(connection: BrokerConnection(bootstrapServers: "127.0.0.1:1"), logger: Logger(label: "test"))
        let first = publisher.current
        let fenced = KafkaError(code: 90, name: "PRODUCER_FENCED", message: "fenced", isRetriable: false, requiresAbort: false, isFatal: true)
        #expect(publisher.replace(first, after: fenced))
        let second = publisher.current
        #expect(second !== first)
        _ = publisher.replace(first, after: fenced)  // a second report about the old one
        #expect(publisher.current === second)
        for _ in 0..<10 { _ = publisher.replace(publisher.current, after: fenced) }
        #expect(!publisher.replace(publisher.current, after: fenced), "no more than replacementLimit replacements")
    }
}
