import ArgumentParser
import FlotillaCore
import FlotillaHTTP

/// `--http-address`, `--http-port`, `--http-token-file`: where a command's HTTP server listens
/// and the token its actions need (see docs/OPERATIONS.md, "HTTP").
struct HTTPOptions: ParsableArguments {
    @Option(name: .customLong("http-address"),
            help: "Serve HTTP on HOST:PORT (default 127.0.0.1, or $FLOTILLA_HTTP_ADDRESS). Off this machine only when you ask for it.")
    var address: String?

    @Option(name: .customLong("http-port"), help: "The port of the HTTP server (0: any free port); overrides the port of --http-address.")
    var port: Int?

    @Option(name: .customLong("http-token-file"),
            help: "A file holding the bearer token that POST /actions/... need (else $FLOTILLA_HTTP_TOKEN_FILE or $FLOTILLA_HTTP_TOKEN; none: actions refused).")
    var tokenFile: String?

    func validate() throws {
        if let port, !(0...65535).contains(port) { throw ValidationError("--http-port must be between 0 and 65535") }
        if let address {
            do { _ = try HTTPListenAddress(parsing: address) } catch { throw ValidationError(error.message) }
        }
    }

    /// The server's settings; nil when nothing asks for one and `always` is false.
    func settings(always: Bool) throws(FlotillaError) -> OperatorSettings? {
        let given = try HTTPListenAddress.from(flag: address)
        guard always || given != nil || port != nil else { return nil }
        var listen = given ?? HTTPListenAddress(port: 0)
        if let port { listen.port = port }
        return OperatorSettings(address: listen, token: try ActionToken.load(file: tokenFile))
    }
}
