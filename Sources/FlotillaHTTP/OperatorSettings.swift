/// How an operator server listens and what it allows.
public struct OperatorSettings: Sendable {
    /// Where it listens (loopback unless asked otherwise).
    public var address: HTTPListenAddress
    /// The bearer token for `POST /actions/...`; nil: every action is refused with 403.
    public var token: ActionToken?
    /// Request bodies above this are answered 413 (actions take their arguments in the query).
    public var maxBodyBytes = 16 * 1_024
    /// Request heads above this (all header fields together) are refused by the parser.
    public var maxHeaderBytes = 16 * 1_024
    /// A connection that completes no request for this long is closed: a client that sends a
    /// request slowly, byte by byte, holds a connection no longer than this.
    public var idleTimeout: Duration = .seconds(10)
    /// An action that cannot finish in this long (the broker does not take its record) is
    /// answered 504.
    public var requestTimeout: Duration = .seconds(10)

    public init(address: HTTPListenAddress = HTTPListenAddress(port: 0), token: ActionToken? = nil) {
        self.address = address
        self.token = token
    }
}
