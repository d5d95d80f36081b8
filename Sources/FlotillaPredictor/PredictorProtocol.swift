import FlotillaCore

/// The framed predictor protocol (docs/PREDICTORS.md): 4-byte big-endian length + UTF-8 JSON object.
public enum PredictorProtocol {
    /// The protocol version a child announces in its hello frame.
    public static let version: Int64 = 1
    /// Frames larger than this are a protocol violation (either direction).
    public static let maxFrameBytes = 64 * 1024 * 1024

    /// A frame as bytes on the wire: the length prefix and the JSON payload.
    static func encodeFrame(_ message: JSONValue) -> [UInt8] {
        var out: [UInt8] = [0, 0, 0, 0]
        out.reserveCapacity(1024)
        FrameJSON.write(message, into: &out)
        let length = UInt32(out.count - 4)
        out[0] = UInt8(truncatingIfNeeded: length >> 24)
        out[1] = UInt8(truncatingIfNeeded: length >> 16)
        out[2] = UInt8(truncatingIfNeeded: length >> 8)
        out[3] = UInt8(truncatingIfNeeded: length)
        return out
    }

    static func predictFrame(seq: Int64, samples: [PredictorSample]) -> [UInt8] {
        let items: [JSONValue] = samples.map { .object(["id": .string($0.id), "input": $0.input]) }
        return encodeFrame(.object(["type": .string("predict"), "seq": .int(seq), "samples": .array(items)]))
    }

    static let shutdownFrame: [UInt8] = encodeFrame(.object(["type": .string("shutdown")]))
}

/// A message from a predictor child, validated.
enum ChildMessage: Sendable, Equatable {
    case hello(name: String, maxBatch: Int?)
    case result(seq: Int64, outputs: [Result<JSONValue, PredictionError>])
    case batchError(seq: Int64, message: String)

    /// Reads a decoded frame; a message that does not follow the protocol throws a description of why.
    init(frame: JSONValue) throws(ProtocolViolation) {
        guard case .object(let object) = frame else { throw ProtocolViolation("a frame is not a JSON object") }
        guard let type = object["type"]?.stringValue else { throw ProtocolViolation("a frame has no string \"type\"") }
        switch type {
        case "hello":
            guard case .int(let v) = object["v"] ?? .null, v == PredictorProtocol.version else {
                throw ProtocolViolation("hello frame has \"v\" \(object["v"].map { "\($0)" } ?? "missing"), expected \(PredictorProtocol.version)")
            }
            let name = object["name"]?.stringValue ?? ""
            var maxBatch: Int?
            switch object["maxBatch"] ?? .null {
            case .null: maxBatch = nil
            case .int(let n) where n > 0: maxBatch = Int(n)
            default: throw ProtocolViolation("hello frame's \"maxBatch\" must be a positive integer")
            }
            self = .hello(name: name, maxBatch: maxBatch)
        case "result":
            guard case .int(let seq) = object["seq"] ?? .null else { throw ProtocolViolation("result frame has no integer \"seq\"") }
            guard case .array(let items) = object["outputs"] ?? .null else { throw ProtocolViolation("result frame has no \"outputs\" array") }
            var outputs: [Result<JSONValue, PredictionError>] = []
            outputs.reserveCapacity(items.count)
            for item in items {
                if let output = item["output"] {
                    outputs.append(.success(output))
                } else if let error = item["error"] {
                    outputs.append(.failure(PredictionError(.model, error.stringValue ?? "\(error)")))
                } else {
                    throw ProtocolViolation("result frame has an output with neither \"output\" nor \"error\"")
                }
            }
            self = .result(seq: seq, outputs: outputs)
        case "error":
            guard case .int(let seq) = object["seq"] ?? .null else { throw ProtocolViolation("error frame has no integer \"seq\"") }
            self = .batchError(seq: seq, message: object["message"]?.stringValue ?? "no message")
        default:
            throw ProtocolViolation("unknown frame type \"\(type)\"")
        }
    }
}

/// Why a child's output broke the protocol.
struct ProtocolViolation: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
