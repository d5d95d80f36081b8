/// One input sample: its id and its input value, or why it could not be read.
public struct Sample: Sendable, Hashable {
    /// The sample's id: the input's `id` field or column, else `<file>:<line>` (1-based line).
    public var id: String
    /// The sample's input as the JSON bytes it arrived in (a CSV row: its object, written once), or
    /// a message saying why the raw record is not a valid sample (invalid UTF-8, malformed JSON,
    /// ragged CSV row). An unreadable sample becomes an error result.
    public var input: Result<JSONBytes, SampleError>

    public init(id: String, input: Result<JSONBytes, SampleError>) {
        self.id = id
        self.input = input
    }

    /// A sample whose input is `value`, written as compact JSON.
    public init(id: String, value: JSONValue) {
        self.init(id: id, input: .success(JSONBytes(value)))
    }
}

/// Why one raw record is not a valid sample.
public struct SampleError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
