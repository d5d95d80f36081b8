extension Duration {
    /// The duration in seconds, fractional: the one conversion every module uses.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
