import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import Testing
import Unrace
import UnraceSQL
import UnraceShop

/// One HTTP exchange as a test sees it.
struct HTTPExchange: Sendable {
    let status: Int
    let headers: HTTPHeaders
    let body: String

    func header(_ name: String) -> String? { headers.first(name: name) }
    var isReplay: Bool { header("Idempotent-Replayed") == "true" }
    var problemCode: String? {
        guard header("Content-Type") == "application/problem+json",
            let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
        else { return nil }
        return object["code"] as? String
    }
}

/// What an HTTP test sends requests through: a server in process (``InProcessClient``) or a
/// real one on loopback (``LiveClient``).
protocol HTTPTestClient: Sendable {
    /// Sends one request and reads the whole answer.
    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], json: String?) async throws -> HTTPExchange
}

extension HTTPTestClient {
    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)] = [], json: String? = nil) async throws -> HTTPExchange {
        try await send(method, path, headers: headers, json: json)
    }
}

/// HummingbirdTesting's router client: each request goes straight to the application's
/// responder, with no socket, so concurrent requests still race in the middleware and the store.
struct InProcessClient: HTTPTestClient {
    let client: any TestClientProtocol

    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], json: String?) async throws -> HTTPExchange {
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: try #require(HTTPField.Name(name)), value: value)) }
        if json != nil { fields[.contentType] = "application/json" }
        let response = try await client.executeRequest(
            uri: path,
            method: HTTPRequest.Method(rawValue: method.rawValue)!,
            headers: fields,
            body: json.map { ByteBuffer(string: $0) }
        )
        var answered = HTTPHeaders()
        for field in response.headers { answered.add(name: field.name.rawName, value: field.value) }
        return HTTPExchange(status: response.status.code, headers: answered, body: String(buffer: response.body))
    }
}

/// Runs a Hummingbird application in process (HummingbirdTesting's `.router` setup) for the
/// duration of `body`; the application's services run as they would behind a server.
func withInProcessServer<T: Sendable, Context: RequestContext>(
    _ router: Router<Context>,
    _ body: (InProcessClient) async throws -> T
) async throws -> T where Context.Source == ApplicationRequestContextSource {
    var logger = Logger(label: "test.http")
    logger.logLevel = .warning
    let app = Application(router: router, logger: logger)
    // The testing closure must be Sendable and `body` need not be: the closure hands its client
    // out and waits until `body` is done with it.
    let (clients, handOut) = AsyncStream<any TestClientProtocol>.makeStream()
    let done = Latch()
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            // Finished however the test ends, so the wait below never outlives a failed start.
            defer { handOut.finish() }
            try await app.test(.router) { client in
                handOut.yield(client)
                await done.waitForTheTest()  // opened however the test's body ends
            }
        }
        var iterator = clients.makeAsyncIterator()
        guard let client = await iterator.next() else {
            // No client: the application failed to start (its error is thrown here) or the test
            // was cancelled.
            done.open()
            try await group.waitForAll()
            throw CancellationError()
        }
        do {
            let result = try await body(InProcessClient(client: client))
            done.open()
            try await group.waitForAll()
            return result
        } catch {
            done.open()
            group.cancelAll()
            throw error
        }
    }
}

/// A real HTTP client on loopback, allowing up to 64 connections so concurrent requests race.
struct LiveClient: HTTPTestClient {
    let port: Int
    static let client: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(30), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    func send(_ method: HTTPMethod, _ path: String, headers: [(String, String)], json: String?) async throws -> HTTPExchange {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        // `X-Test-Chunked: 1` (not sent) sends the body in two chunks of unknown length.
        let chunked = headers.contains { $0.0 == "X-Test-Chunked" }
        for (name, value) in headers where name != "X-Test-Chunked" { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            if chunked {
                let bytes = Array(json.utf8)
                let halves = [ByteBuffer(bytes: bytes.prefix(bytes.count / 2)), ByteBuffer(bytes: bytes.dropFirst(bytes.count / 2))]
                request.body = .stream(halves.async, length: .unknown)
            } else {
                request.body = .bytes(ByteBuffer(string: json))
            }
        }
        // Generous: these tests assert what is answered and stored, not how fast. With the whole
        // suite on two cores, 64 requests queued on one SQLite writer have taken over 60 s for the
        // last of them (a deadline exceeded, once, on the Vapor contract without the middleware).
        let response = try await Self.client.execute(request, timeout: .seconds(180))
        let body = try await response.body.collect(upTo: 1 << 22)
        return HTTPExchange(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }
}

/// Runs a Hummingbird application on a free loopback port for the duration of `body`.
func withLiveServer<T: Sendable, Context: RequestContext>(
    _ router: Router<Context>,
    _ body: (LiveClient) async throws -> T
) async throws -> T where Context.Source == ApplicationRequestContextSource {
    let (ports, continuation) = AsyncStream<Int>.makeStream()
    var logger = Logger(label: "test.http")
    logger.logLevel = .warning
    let app = Application(
        router: router,
        configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) },
        logger: logger
    )
    let services = ServiceGroup(configuration: .init(services: [app], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            // Finished however the server ends, so the wait below never outlives a failed bind.
            defer { continuation.finish() }
            try await services.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            // No port: the server failed to start (its error is thrown here) or was cancelled.
            group.cancelAll()
            try await group.waitForAll()
            throw CancellationError()
        }
        do {
            let result = try await body(LiveClient(port: port))
            await services.triggerGracefulShutdown()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            throw error
        }
    }
}

/// Runs the reference shop on a fresh store of `backend`, in process.
func withShop<T: Sendable>(
    _ backend: SQLBackend,
    _ configuration: ShopConfiguration = .init(),
    _ body: (InProcessClient, any SQLStore, _ location: String) async throws -> T
) async throws -> T {
    try await withStore(backend) { store, location in
        try await serveShop(store, configuration, live: false) { client in
            try await body(try #require(client as? InProcessClient), store, location)
        }
    }
}

/// Runs the reference shop on a fresh store of `backend`, served on a free loopback port (for
/// tests of what the socket carries; ``withShop(_:_:_:)`` otherwise).
func withLiveShop<T: Sendable>(
    _ backend: SQLBackend,
    _ configuration: ShopConfiguration = .init(),
    _ body: (LiveClient, any SQLStore, _ location: String) async throws -> T
) async throws -> T {
    try await withStore(backend) { store, location in
        try await serveShop(store, configuration, live: true) { client in
            try await body(try #require(client as? LiveClient), store, location)
        }
    }
}

/// Sets the reference shop up on `store` and serves it in process or on loopback.
private func serveShop<S: SQLStore, T: Sendable>(
    _ store: S,
    _ configuration: ShopConfiguration,
    live: Bool,
    _ body: (any HTTPTestClient) async throws -> T
) async throws -> T {
    let shop = try Shop(store: store, configuration: configuration)
    try await shop.setUp()
    return live ? try await withLiveServer(try shop.router(), body) : try await withInProcessServer(try shop.router(), body)
}
