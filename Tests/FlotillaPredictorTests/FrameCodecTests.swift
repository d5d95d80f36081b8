import FlotillaCore
@testable import FlotillaPredictor
import Foundation
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    @Test("a frame is a 4-byte big-endian length and the JSON payload")
    func framing() throws {
        let frame = PredictorProtocol.predictFrame(seq: 7, samples: [PredictorSample(id: "a", value: .int(1))])
        let length = Int(frame[0]) << 24 | Int(frame[1]) << 16 | Int(frame[2]) << 8 | Int(frame[3])
        #expect(length == frame.count - 4)
        let payload = try JSONBytes.validating(Array(frame[4...])).get().value
        #expect(payload == .object(["type": .string("predict"), "seq": .int(7), "samples": .array([.object(["id": .string("a"), "input": .int(1)])])]))
        let columns = PredictorProtocol.predictFrame(seq: 8, samples: [PredictorSample(id: "a", value: .int(1)), PredictorSample(id: "b\"", value: .object(["x": .null]))], columns: true)
        #expect(try JSONBytes.validating(Array(columns[4...])).get().value == .object([
            "type": .string("predict"), "seq": .int(8), "ids": .array([.string("a"), .string("b\"")]),
            "inputs": .array([.int(1), .object(["x": .null])]),
        ]))
    }

    func message(_ value: JSONValue) throws(ProtocolViolation) -> ChildMessage {
        try ChildMessage(payload: JSONWriter.bytes(value))
    }

    func violation(_ text: String) -> String? {
        do {
            _ = try ChildMessage(payload: Array(text.utf8))
            return nil
        } catch {
            return error.description
        }
    }

    @Test("child messages are validated")
    func childMessages() throws {
        let hello = try message(.object(["type": .string("hello"), "v": .int(1), "name": .string("m"), "maxBatch": .int(8)]))
        #expect(hello == .hello(name: "m", maxBatch: 8, columns: false))
        #expect(try message(.object(["type": .string("hello"), "v": .int(1), "columns": .bool(true)])) == .hello(name: "", maxBatch: nil, columns: true))
        let result = try message(.object(["type": .string("result"), "seq": .int(3), "outputs": .array([
            .object(["output": .int(1)]), .object(["error": .string("bad")]),
        ])]))
        #expect(result == .result(seq: 3, outputs: [.success(JSONBytes(.int(1))), .failure(PredictionError(.model, "bad"))]))
        #expect(throws: ProtocolViolation.self) { try message(.object(["type": .string("hello"), "v": .int(2)])) }
        #expect(throws: ProtocolViolation.self) { try message(.array([])) }
        #expect(throws: ProtocolViolation.self) { try message(.object(["type": .string("result"), "seq": .int(1), "outputs": .array([.object([:])])])) }
        #expect(throws: ProtocolViolation.self) { try message(.object(["type": .string("bogus")])) }
    }

    @Test("outputs are cut out as the bytes the child wrote; the columnar form carries sparse errors")
    func outputBytes() throws {
        let entries = try ChildMessage(payload: Array(#"{"type":"result","seq":1,"outputs":[{"output": {"b": 1.50, "a":[1]} },{"error":{"code":3}}]}"#.utf8))
        #expect(entries == .result(seq: 1, outputs: [
            .success(JSONBytes(trusted: Array(#"{"b": 1.50, "a":[1]}"#.utf8))), .failure(PredictionError(.model, #"{"code":3}"#)),
        ]))
        let columns = try ChildMessage(payload: Array(#"{"values":[1, "two",null],"errors":{"2":"too big"},"type":"result","seq":4}"#.utf8))
        #expect(columns == .result(seq: 4, outputs: [
            .success(JSONBytes(.int(1))), .success(JSONBytes(.string("two"))), .failure(PredictionError(.model, "too big")),
        ]))
    }

    @Test("a frame that breaks the protocol says how", arguments: [
        (#"{"type":"result","seq":1,"values":[1],"errors":{"5":"x"}}"#, #"result frame's "errors" names sample 5 of 1"#),
        (#"{"type":"result","seq":1,"values":[1],"outputs":[]}"#, #"result frame has both "outputs" and "values""#),
        (#"{"type":"result","seq":1,"outputs":[1]}"#, #"result frame has an output with neither "output" nor "error""#),
        (#"{"type":"result","seq":1}"#, #"result frame has no "outputs" array"#),
        (#"{"type":"result","seq":"1","outputs":[]}"#, #"result frame has no integer "seq""#),
        (#"{"type":"result","seq":1,"outputs":[{"output":NaN}]}"#, #"a frame is not valid JSON (unexpected character 'N' at byte 46): "{"type":"result","seq":1,"outputs":[{"output":NaN}]}""#),
        ("[1]", "a frame is not a JSON object"),
    ])
    func violations(_ text: String, _ expected: String) {
        #expect(violation(text) == expected)
    }

    @Test("a frame that is not UTF-8 is a violation")
    func notUTF8() {
        #expect(throws: ProtocolViolation.self) { try ChildMessage(payload: Array(#"{"type":"result","seq":1,"values":[""#.utf8) + [0xC3, 0x28] + Array(#""]}"#.utf8)) }
    }
}
