/// Durations as the job spec writes them: "500ms", "5s", "2m", "1h", or a plain number of seconds
/// ("1.5" = 1.5 s). Millisecond resolution; the same text form is used when a `JobConfig` is
/// encoded into the job manifest, so a manifest reads like the spec.
public enum SpecDuration {
    /// Parses `text`; nil when it is not a duration (negative values and sub-millisecond
    /// precision included).
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingWhitespace()
        let units: [(suffix: String, millisPerUnit: Double)] = [
            ("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000),
        ]
        var number = trimmed
        var scale = 1_000.0
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            number = String(trimmed.dropLast(unit.suffix.count)).trimmingWhitespace()
            scale = unit.millisPerUnit
            break
        }
        // Refuse "1e3s", "inf", "+5" and friends: digits with at most one dot.
        guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              number.filter({ $0 == "." }).count <= 1, number != ".",
              let value = Double(number) else { return nil }
        let millis = value * scale
        guard millis.isFinite, millis < 1e15, millis.rounded() == millis else { return nil }
        return .milliseconds(Int64(millis))
    }

    /// The text form: whole hours, minutes or seconds when exact ("2m", "5s"), else milliseconds.
    public static func format(_ duration: Duration) -> String {
        let millis = duration.milliseconds
        if millis != 0 {
            if millis % 3_600_000 == 0 { return "\(millis / 3_600_000)h" }
            if millis % 60_000 == 0 { return "\(millis / 60_000)m" }
            if millis % 1_000 == 0 { return "\(millis / 1_000)s" }
        }
        return "\(millis)ms"
    }
}

extension KeyedEncodingContainer {
    /// Encodes a duration in the spec's text form ("5s").
    mutating func encodeDuration(_ duration: Duration, forKey key: Key) throws {
        try encode(SpecDuration.format(duration), forKey: key)
    }
}

extension KeyedDecodingContainer {
    /// Decodes a duration from the spec's text form or a number of seconds.
    func decodeDuration(forKey key: Key) throws -> Duration {
        if let seconds = try? decode(Double.self, forKey: key), let duration = SpecDuration.parse(String(seconds)) {
            return duration
        }
        let text = try decode(String.self, forKey: key)
        guard let duration = SpecDuration.parse(text) else {
            throw DecodingError.dataCorruptedError(
                forKey: key, in: self, debugDescription: "'\(text)' is not a duration such as 500ms, 5s or 2m")
        }
        return duration
    }
}
