import Foundation
import Hummingbird
import Testing
import Unrace
import UnraceHTTP
import UnraceHummingbird
import UnraceShop

/// A body over the limit is answered 413 and its connection closed: the server does not read the
/// rest of the upload (of any size, at any pace) to find the next request.
@Suite("Body overflow closes the connection", .timeLimit(.minutes(10)))
struct BodyOverflowTests {
    /// Sends a request head declaring `declared` bytes and `sent` of them, then reads.
    static func overflow(port: Int, path: String, declared: Int, sent: Int) async throws -> (status: Int?, closed: Bool) {
        let connection = try RawConnection(port: port)
        try connection.send(
            "POST \(path) HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: big\r\n"
                + "X-Client-Id: alice\r\nContent-Length: \(declared)\r\n\r\n"
        )
        try connection.send([UInt8](repeating: UInt8(ascii: "x"), count: sent))
        // The rest of the declared body never comes: a server that reads on waits past the bound.
        let (bytes, closed) = await connection.readUntilClosed(timeout: .seconds(10))
        return (RawConnection.status(bytes), closed)
    }

    @Test("the shop (RequestBodyTimeout): a body one byte over 1 MiB of a declared 3 MiB gets 413 and a closed connection")
    func shop() async throws {
        try await withLiveShop(.sqlite) { client, store, _ in
            let answer = try await Self.overflow(port: client.port, path: "/orders", declared: 3 << 20, sent: (1 << 20) + 1)
            #expect(answer.status == 413 && answer.closed, "\(answer)")
            #expect(try await countRows(store, "shop_orders") == 0)
        }
    }

    @Test("IdempotencyMiddleware alone: a body one byte over its limit gets 413 and a closed connection")
    func middleware() async throws {
        var configuration = IdempotencyConfiguration()
        configuration.requestBodyByteCountLimit = 4_096
        let router = Router(context: UnraceRequestContext<MemoryStore.Transaction>.self)
        router.add(middleware: ProblemMiddleware())
        router.add(
            middleware: try IdempotencyMiddleware(
                operations: try Operations(store: MemoryStore()),
                principal: .everyone,
                configuration: configuration
            )
        )
        router.post("orders") { _, _ in Response(status: .created) }
        try await withLiveServer(router) { client in
            let answer = try await Self.overflow(port: client.port, path: "/orders", declared: 1 << 20, sent: 4_097)
            #expect(answer.status == 413 && answer.closed, "\(answer)")
        }
    }
}
