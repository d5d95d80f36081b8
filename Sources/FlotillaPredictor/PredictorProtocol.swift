import FlotillaCore

/// The framed predictor protocol (docs/PREDICTORS.md): 4-byte big-endian length + UTF-8 JSON object.
///
/// Sample inputs and model outputs cross it as bytes: a predict frame is written by splicing each
/// input's ``JSONBytes``; a result frame is scanned once, each output's bytes cut out, never parsed
/// into a tree.
public enum PredictorProtocol {
    /// The protocol version a child announces in its hello frame.
    public static let version: Int64 = 1
    /// Frames larger than this are a protocol violation (either direction).
    public static let maxFrameBytes = 64 * 1024 * 1024
    /// A sample may nest as deep as an input line may, plus the frame's own levels.
    static let maxFrameDepth = JSONScanner.defaultMaxDepth + 4

    /// A frame: the length prefix, then what `body` appends.
    static func frame(capacity: Int = 256, _ body: (inout [UInt8]) -> Void) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0, 0]
        out.reserveCapacity(capacity + 4)
        body(&out)
        let length = UInt32(truncatingIfNeeded: out.count - 4)
        out[0] = UInt8(truncatingIfNeeded: length >> 24)
        out[1] = UInt8(truncatingIfNeeded: length >> 16)
        out[2] = UInt8(truncatingIfNeeded: length >> 8)
        out[3] = UInt8(truncatingIfNeeded: length)
        return out
    }

    /// A frame holding `message`.
    static func encodeFrame(_ message: JSONValue) -> [UInt8] {
        frame { JSONWriter.write(message, into: &$0) }
    }

    /// A predict frame: `samples` form, or the `ids`/`inputs` columns a child asked for in its hello.
    static func predictFrame(seq: Int64, samples: [PredictorSample], columns: Bool = false) -> [UInt8] {
        // Through the buffer, each sample's id and bytes are read in place: iterating the array
        // copied every sample out (a retain and a release of its input's buffer each).
        samples.withUnsafeBufferPointer { samples in
            var capacity = 64
            for position in samples.indices { capacity += samples[position].input.bytes.count + samples[position].id.utf8.count + 24 }
            return frame(capacity: capacity) { out in
                JSONWriter.raw(#"{"type":"predict","seq":"#, into: &out)
                JSONWriter.write(seq, into: &out)
                if columns {
                    JSONWriter.raw(#","ids":["#, into: &out)
                    for position in samples.indices {
                        if position > 0 { out.append(UInt8(ascii: ",")) }
                        JSONWriter.write(samples[position].id, into: &out)
                    }
                    JSONWriter.raw(#"],"inputs":["#, into: &out)
                    for position in samples.indices {
                        if position > 0 { out.append(UInt8(ascii: ",")) }
                        samples[position].input.bytes.withUnsafeBufferPointer { out.append(contentsOf: $0) }
                    }
                    JSONWriter.raw("]}", into: &out)
                } else {
                    JSONWriter.raw(#","samples":["#, into: &out)
                    for position in samples.indices {
                        JSONWriter.raw(position > 0 ? #",{"id":"# : #"{"id":"#, into: &out)
                        JSONWriter.write(samples[position].id, into: &out)
                        JSONWriter.raw(#","input":"#, into: &out)
                        samples[position].input.bytes.withUnsafeBufferPointer { out.append(contentsOf: $0) }
                        out.append(UInt8(ascii: "}"))
                    }
                    JSONWriter.raw("]}", into: &out)
                }
            }
        }
    }

    static let shutdownFrame: [UInt8] = encodeFrame(.object(["type": .string("shutdown")]))
}

/// A message from a predictor child, validated.
enum ChildMessage: Sendable, Equatable {
    case hello(name: String, maxBatch: Int?, columns: Bool)
    case result(seq: Int64, outputs: [Result<JSONBytes, PredictionError>])
    case batchError(seq: Int64, message: String)

    /// Reads a frame's payload in one scan; a frame that does not follow the protocol throws why.
    init(payload: [UInt8]) throws(ProtocolViolation) {
        let fields = try payload.withUnsafeBufferPointer { (buffer) throws(ProtocolViolation) -> FrameFields in
            // Output bytes are spliced into records as they are, so they must be valid UTF-8.
            guard UTF8Validation.isValid(buffer) else { throw ProtocolViolation("a frame is not valid UTF-8") }
            var scanner = JSONScanner(buffer, maxDepth: PredictorProtocol.maxFrameDepth)
            scanner.skipWhitespace()
            guard scanner.current == UInt8(ascii: "{") else {
                // Tell junk from a well-formed non-object.
                if scanner.skipValue() && scanner.expectEnd() { throw ProtocolViolation("a frame is not a JSON object") }
                throw ProtocolViolation.notJSON(scanner, buffer)
            }
            var fields = FrameFields(payload: payload)
            guard scanner.forEachMember({ fields.read(&$0, key: $1) }), scanner.expectEnd() else {
                if let violation = fields.violation { throw violation }
                throw ProtocolViolation.notJSON(scanner, buffer)
            }
            return fields
        }
        try self.init(fields)
    }

    private init(_ fields: FrameFields) throws(ProtocolViolation) {
        guard let type = fields.scalars["type"]?.stringValue else { throw ProtocolViolation("a frame has no string \"type\"") }
        func seq() throws(ProtocolViolation) -> Int64 {
            guard case .int(let seq)? = fields.scalars["seq"] else { throw ProtocolViolation("\(type) frame has no integer \"seq\"") }
            return seq
        }
        switch type {
        case "hello":
            guard case .int(let v) = fields.scalars["v"] ?? .null, v == PredictorProtocol.version else {
                throw ProtocolViolation("hello frame has \"v\" \(fields.scalars["v"].map { "\($0)" } ?? "missing"), expected \(PredictorProtocol.version)")
            }
            var maxBatch: Int?
            switch fields.scalars["maxBatch"] ?? .null {
            case .null: maxBatch = nil
            case .int(let n) where n > 0: maxBatch = Int(n)
            default: throw ProtocolViolation("hello frame's \"maxBatch\" must be a positive integer")
            }
            let columns = fields.scalars["columns"] == .bool(true)
            self = .hello(name: fields.scalars["name"]?.stringValue ?? "", maxBatch: maxBatch, columns: columns)
        case "result":
            let seq = try seq()
            switch (fields.outputs, fields.values) {
            case (let outputs?, nil):
                self = .result(seq: seq, outputs: outputs)
            case (nil, var values?):
                for (position, message) in fields.errors {
                    guard values.indices.contains(position) else {
                        throw ProtocolViolation("result frame's \"errors\" names sample \(position) of \(values.count)")
                    }
                    values[position] = .failure(PredictionError(.model, message))
                }
                self = .result(seq: seq, outputs: values)
            case (nil, nil): throw ProtocolViolation("result frame has no \"outputs\" array")
            case (_?, _?): throw ProtocolViolation("result frame has both \"outputs\" and \"values\"")
            }
        case "error":
            self = .batchError(seq: try seq(), message: fields.scalars["message"]?.stringValue ?? "no message")
        default:
            throw ProtocolViolation("unknown frame type \"\(type)\"")
        }
    }
}

/// The members of a frame as one scan finds them: small values as trees, outputs as bytes.
private struct FrameFields {
    /// The frame's bytes: outputs are slices of it (one buffer per batch, not one per sample).
    let payload: [UInt8]
    var scalars: [String: JSONValue] = [:]
    var outputs: [Result<JSONBytes, PredictionError>]?
    var values: [Result<JSONBytes, PredictionError>]?
    var errors: [(Int, String)] = []
    /// A protocol problem found while scanning (not a JSON syntax error).
    var violation: ProtocolViolation?

    mutating func read(_ scanner: inout JSONScanner, key: JSONKey) -> Bool {
        if key.matches("outputs") { return readOutputs(&scanner) }
        if key.matches("values") {
            var values: [Result<JSONBytes, PredictionError>] = []
            let ok = scanner.forEachElement { scanner in
                guard let output = cut(&scanner) else { return false }
                values.append(.success(output))
                return true
            }
            self.values = values
            return ok
        }
        if key.matches("errors") {
            guard scanner.current == UInt8(ascii: "{") else { return refuse("result frame's \"errors\" is not an object") }
            return scanner.forEachMember { scanner, key in
                guard let position = Int(key.string), let message = scanner.value() else {
                    return scanner.failure == nil ? refuse("result frame's \"errors\" has a key that is not a sample index") : false
                }
                errors.append((position, message.stringValue ?? JSONBytes(message).text))
                return true
            }
        }
        guard let value = scanner.value() else { return false }
        scalars[key.string] = value
        return true
    }

    /// `[{"output": v} | {"error": "m"}, ...]`.
    private mutating func readOutputs(_ scanner: inout JSONScanner) -> Bool {
        guard scanner.current == UInt8(ascii: "[") else { return refuse("result frame has no \"outputs\" array") }
        var outputs: [Result<JSONBytes, PredictionError>] = []
        let ok = scanner.forEachElement { scanner in
            var entry: Result<JSONBytes, PredictionError>?
            guard scanner.current == UInt8(ascii: "{") else {
                return refuse("result frame has an output with neither \"output\" nor \"error\"")
            }
            let ok = scanner.forEachMember { scanner, key in
                if key.matches("output") {
                    guard let output = cut(&scanner) else { return false }
                    entry = .success(output)
                } else if key.matches("error") {
                    guard let error = scanner.value() else { return false }
                    if entry == nil { entry = .failure(PredictionError(.model, error.stringValue ?? JSONBytes(error).text)) }
                } else {
                    return scanner.skipValue()
                }
                return true
            }
            guard ok else { return false }
            guard let entry else { return refuse("result frame has an output with neither \"output\" nor \"error\"") }
            outputs.append(entry)
            return true
        }
        self.outputs = outputs
        return ok
    }

    /// The value at the cursor, validated, as a slice of the payload (the scanner reads the payload's buffer).
    private func cut(_ scanner: inout JSONScanner) -> JSONBytes? {
        guard let range = scanner.skipValueRange() else { return nil }
        return JSONBytes(trusted: payload[range])
    }

    private mutating func refuse(_ why: String) -> Bool {
        violation = ProtocolViolation(why)
        return false
    }
}

/// Why a child's output broke the protocol.
struct ProtocolViolation: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }

    /// The frame is not JSON: the scanner's reason, where, and how the frame began.
    static func notJSON(_ scanner: JSONScanner, _ payload: UnsafeBufferPointer<UInt8>) -> ProtocolViolation {
        let preview = String(decoding: payload.prefix(60), as: UTF8.self).debugEscaped
        return ProtocolViolation("a frame is not valid JSON (\(scanner.failure ?? "unexpected input") at byte \(scanner.index)): \"\(preview)\"")
    }
}
