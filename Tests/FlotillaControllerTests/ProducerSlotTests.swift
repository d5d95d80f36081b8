@testable import FlotillaController
import Logging
import RdKafka
import Testing

/// The controller's producer is replaced after a fatal error, once per failed producer, at most
/// `replacementLimit` times. (Making librdkafka raise a fatal error needs its test API, which the
/// product does not expose; the send path that calls `replace` is covered by reading it.)
@Suite("Controller producer replacement")
struct ProducerSlotTests {
    @Test("a failed producer is replaced once; a stale report changes nothing; the limit holds")
    func replacement() throws {
        let configuration = KafkaProducerConfiguration(client: KafkaClientConfiguration(bootstrapServers: "127.0.0.1:1"))
        let slot = try ProducerSlot(configuration: configuration, logger: Logger(label: "test"))
        let first = slot.current
        let fenced = KafkaError(code: 90, name: "PRODUCER_FENCED", message: "fenced", isRetriable: false, requiresAbort: false, isFatal: true)
        #expect(slot.replace(first, after: fenced))
        let second = slot.current
        #expect(second !== first)
        _ = slot.replace(first, after: fenced)  // a second report about the old one
        #expect(slot.current === second)
        for _ in 0..<10 { _ = slot.replace(slot.current, after: fenced) }
        #expect(!slot.replace(slot.current, after: fenced), "no more than replacementLimit replacements")
    }
}
