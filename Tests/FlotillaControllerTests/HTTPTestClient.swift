import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Requests to the servers under test, through async-http-client.
enum HTTPTestClient {
    struct Reply: Sendable {
        var status: Int
        var body: String
        var headers: HTTPHeaders
    }

    static func request(_ url: String, method: HTTPMethod = .GET, headers: [(String, String)] = [], body: [UInt8]? = nil,
                        timeout: TimeAmount = .seconds(5)) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 16 * 1_024 * 1_024)
        return Reply(status: Int(response.status.code), body: String(buffer: bytes), headers: response.headers)
    }

    static func get(_ url: String) async throws -> Reply { try await request(url) }

    /// `POST` with `Authorization: Bearer token` when a token is given.
    static func post(_ url: String, token: String? = nil) async throws -> Reply {
        try await request(url, method: .POST, headers: token.map { [("Authorization", "Bearer \($0)")] } ?? [])
    }
}
