import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    @Test("JSON values survive a write/parse round trip, integers stay integers")
    func roundTrip() throws {
        let value: JSONValue = .object([
            "id": .string("a\"b\\c\n\u{1}é😀"), "n": .int(-9_007_199_254_740_993), "x": .double(0.1),
            "big": .double(1e300), "list": .array([.null, .bool(true), .bool(false), .array([]), .object([:])]),
        ])
        let parsed = try FrameJSON.parse(FrameJSON.serialize(value))
        #expect(parsed == value)
    }

    @Test("parses what JSONSerialization writes, including escapes and surrogate pairs")
    func parsesForeignJSON() throws {
        let text = #"{"s":"\u00e9\ud83d\ude00\/\t","e":1.5e3,"neg":-0.25,"i":42}"#
        let parsed = try FrameJSON.parse(Array(text.utf8))
        #expect(parsed == .object(["s": .string("é😀/\t"), "e": .double(1500), "neg": .double(-0.25), "i": .int(42)]))
    }

    @Test("rejects malformed JSON", arguments: ["{", "[1,]", "{\"a\" 1}", "nul", "\"\\ud800\"", "01x", "{} x", "\"a\u{1}\""])
    func rejectsMalformed(_ text: String) {
        #expect(throws: FrameJSON.ParseError.self) { try FrameJSON.parse(Array(text.utf8)) }
    }

    @Test("rejects nesting deeper than the limit instead of overflowing the stack")
    func depthLimit() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: FrameJSON.ParseError.self) { try FrameJSON.parse(Array(deep.utf8)) }
    }

    @Test("a frame is a 4-byte big-endian length and the JSON payload")
    func framing() throws {
        let frame = PredictorProtocol.predictFrame(seq: 7, samples: [PredictorSample(id: "a", input: .int(1))])
        let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
        #expect(length == frame.count - 4)
        let payload = try FrameJSON.parse(Array(frame[4...]))
        #expect(payload == .object(["type": .string("predict"), "seq": .int(7), "samples": .array([.object(["id": .string("a"), "input": .int(1)])])]))
    }

    @Test("child messages are validated")
    func childMessages() throws {
        let hello = try ChildMessage(frame: .object(["type": .string("hello"), "v": .int(1), "name": .string("m"), "maxBatch": .int(8)]))
        #expect(hello == .hello(name: "m", maxBatch: 8))
        let result = try ChildMessage(frame: .object(["type": .string("result"), "seq": .int(3), "outputs": .array([
            .object(["output": .int(1)]), .object(["error": .string("bad")]),
        ])]))
        #expect(result == .result(seq: 3, outputs: [.success(.int(1)), .failure(PredictionError(.model, "bad"))]))
        #expect(throws: ProtocolViolation.self) { try ChildMessage(frame: .object(["type": .string("hello"), "v": .int(2)])) }
        #expect(throws: ProtocolViolation.self) { try ChildMessage(frame: .array([])) }
        #expect(throws: ProtocolViolation.self) { try ChildMessage(frame: .object(["type": .string("result"), "seq": .int(1), "outputs": .array([.object([:])])])) }
        #expect(throws: ProtocolViolation.self) { try ChildMessage(frame: .object(["type": .string("bogus")])) }
    }
}
