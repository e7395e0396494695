import AsyncHTTPClient
import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import NIOCore
import UnraceVapor
import Vapor

/// `VaporShop bench`: `POST /orders` through ``IdempotencyMiddleware`` with a fresh
/// `Idempotency-Key` per request, against the same route without the middleware (its writes in
/// a transaction of their own), both served by this process on loopback in alternating rounds;
/// it prints guarded ÷ plain throughput. A third shop serves the floor: the same route doing by
/// hand what the guarantee needs in its transaction — a key claimed first under a unique
/// constraint, the response stored with the writes — so guarded ÷ by hand is the middleware's own
/// cost and by hand ÷ plain what any exactly-once route pays. Each shop has a database of its own:
/// a new SQLite file, or `DATABASE_URL`'s PostgreSQL database (the shops share it; keys never collide).
struct BenchCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "requests", help: "Requests per round (100 to 100000; default 2000).")
        var requests: Int?
        @Option(name: "connections", help: "Concurrent connections (1 to 256; default 16).")
        var connections: Int?
        @Option(name: "rounds", help: "Rounds of each kind, alternated (1 to 50; default 5).")
        var rounds: Int?
        @Flag(name: "json", help: "Print JSON.")
        var json: Bool
        init() {}
    }

    var help: String { "POST /orders with a fresh Idempotency-Key per request ÷ the same route without the middleware" }

    /// What a run measured.
    struct Result: Codable {
        var backend: String
        var requests: Int
        var connections: Int
        var rounds: Int
        var plainPerSecond: Double
        var guardedPerSecond: Double
        /// The same route claiming its key and storing its response by hand, without Unrace.
        var byHandPerSecond: Double
        /// guarded ÷ plain throughput (1.0: the middleware costs nothing).
        var throughputRatio: Double
        /// by hand ÷ plain: the floor of an exactly-once route's cost (its claim and stored response).
        var floorRatio: Double
        /// guarded ÷ by hand: the middleware's own cost beyond those statements (1.0: none).
        var ownRatio: Double
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        let requests = signature.requests ?? 2_000
        let connections = signature.connections ?? 16
        let rounds = signature.rounds ?? 5
        guard (100...100_000).contains(requests), (1...256).contains(connections), (1...50).contains(rounds) else {
            throw Abort(.badRequest, reason: "--requests 100…100000, --connections 1…256, --rounds 1…50")
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vaporshop-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var logger = Logger(label: "vaporshop.bench")
        logger.logLevel = .warning

        var shops: [(app: Application, port: Int)] = []
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        do {
            for (index, idempotency) in [false, true, false].enumerated() {
                let app = try await Application.make(.production, logger: logger)
                shops.append((app, 0))
                try await Entrypoint.configure(
                    app,
                    idempotency: idempotency,
                    sqlitePath: folder.appendingPathComponent("shop-\(index).sqlite").path
                )
                if index == 2 { try await Self.routeByHand(app) }
                if try await Product.find("bench", on: app.db) == nil {
                    try await Product(sku: "bench", name: "Bench", priceCents: 1, stock: Int64.max / 2).create(on: app.db)
                }
                try await app.server.start(address: .hostname("127.0.0.1", port: 0))
                shops[shops.count - 1].port = app.http.server.shared.localAddress?.port ?? 0
            }
            let (plain, guarded, byHand) = (shops[0].port, shops[1].port, shops[2].port)
            var next = 0
            func measure(_ port: Int, path: String = "orders") async throws -> Double {
                let first = next
                next += requests
                return try await Self.measure(client, port: port, path: path, requests: requests, connections: connections) { first + $0 }
            }
            // Both exactly-once routes must be what they claim before they are measured.
            try await Self.checkExactlyOnce(client, port: guarded, path: "orders")
            try await Self.checkExactlyOnce(client, port: byHand, path: "orders-by-hand")
            // Warm all three (connections, statement caches, the files' first pages), unmeasured.
            _ = try await measure(plain)
            _ = try await measure(guarded)
            _ = try await measure(byHand, path: "orders-by-hand")
            var plainRates: [Double] = []
            var guardedRates: [Double] = []
            var byHandRates: [Double] = []
            for round in 0..<rounds {
                // Take turns going first, so no path always runs on a warmer machine.
                let order = [0, 1, 2].map { ($0 + round) % 3 }
                for turn in order {
                    switch turn {
                    case 0: plainRates.append(try await measure(plain))
                    case 1: guardedRates.append(try await measure(guarded))
                    default: byHandRates.append(try await measure(byHand, path: "orders-by-hand"))
                    }
                }
            }
            let result = Result(
                backend: (Environment.get("DATABASE_URL") ?? "").isEmpty ? "fluent-sqlite" : "fluent-postgres",
                requests: requests,
                connections: connections,
                rounds: rounds,
                plainPerSecond: Self.median(plainRates),
                guardedPerSecond: Self.median(guardedRates),
                byHandPerSecond: Self.median(byHandRates),
                throughputRatio: Self.median(guardedRates) / Self.median(plainRates),
                floorRatio: Self.median(byHandRates) / Self.median(plainRates),
                ownRatio: Self.median(guardedRates) / Self.median(byHandRates)
            )
            try await client.shutdown()
            for shop in shops {
                await shop.app.server.shutdown()
                try await shop.app.asyncShutdown()
            }
            Self.report(result, json: signature.json, context: context)
        } catch {
            try? await client.shutdown()
            for shop in shops {
                await shop.app.server.shutdown()
                try? await shop.app.asyncShutdown()
            }
            throw error
        }
    }

    static func report(_ result: Result, json: Bool, context: CommandContext) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            context.console.print(String(decoding: (try? encoder.encode(result)) ?? Data(), as: UTF8.self))
            return
        }
        context.console.print(
            "VaporShop bench: POST /orders over loopback HTTP, \(result.requests) requests per round, \(result.connections) connections,"
        )
        context.console.print("\(result.rounds) alternating rounds of each, median round; client and servers share this process")
        func row(_ label: String, _ value: String) {
            context.console.print(label.padding(toLength: 36, withPad: " ", startingAt: 0) + value)
        }
        row("backend", result.backend)
        row("without the middleware", String(format: "%8.0f req/s", result.plainPerSecond))
        row("with it, a fresh key per request", String(format: "%8.0f req/s", result.guardedPerSecond))
        row("by hand: key claimed, response kept", String(format: "%8.0f req/s", result.byHandPerSecond))
        row("guarded ÷ without (throughput)", String(format: "%8.2f", result.throughputRatio))
        row("by hand ÷ without (the floor)", String(format: "%8.2f", result.floorRatio))
        row("guarded ÷ by hand (Unrace's own)", String(format: "%8.2f", result.ownRatio))
    }

    /// `POST /orders-by-hand`: the order route with the exactly-once work written by hand, in the
    /// order's transaction — the key inserted first under its primary key with the body's SHA-256
    /// (a concurrent duplicate waits on it, then finds it), the same checks and writes as the
    /// route, the response stored before COMMIT; a used key answers its stored response, or 422
    /// for another body. What any exactly-once route must do, with nothing else (unlike the
    /// middleware, it does not canonicalise JSON or store error answers).
    static func routeByHand(_ app: Application) async throws {
        try await (app.db as! any SQLDatabase).raw(
            """
            CREATE TABLE IF NOT EXISTS bench_by_hand_keys (client TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
              location TEXT, response TEXT, PRIMARY KEY (client, key))
            """
        ).run()
        let store = try await FluentStore(databases: app.databases, logger: app.logger)
        app.post("orders-by-hand") { req async throws -> Response in
            guard let client = client(of: req) else { throw HTTPProblem(.principalInvalid, detail: "send X-Client-Id once") }
            guard let key = req.headers.first(name: "Idempotency-Key") else {
                throw HTTPProblem(.badRequest, detail: "Idempotency-Key is required")
            }
            let fingerprint = Fingerprint.bytes(req.body.data.map { Array($0.readableBytesView) } ?? []).hex
            let input = try req.content.decode(OrderRequest.self)
            guard (1...1_000).contains(input.quantity) else {
                throw HTTPProblem(.badRequest, detail: "quantity must be between 1 and 1000")
            }
            let order = Order(id: UUID().uuidString.lowercased(), client: client, sku: input.sku, quantity: input.quantity)
            let answer: (location: String, body: String, replayed: Bool) = try await store.withTransaction { tx in
                let sql = tx.fluent as! any SQLDatabase
                let claimed = try await sql.raw(
                    """
                    INSERT INTO bench_by_hand_keys (client, key, fingerprint) VALUES (\(bind: client), \(bind: key), \(bind: fingerprint))
                    ON CONFLICT DO NOTHING RETURNING key
                    """
                ).all()
                guard !claimed.isEmpty else {
                    let row = try await sql.raw(
                        "SELECT fingerprint, location, response FROM bench_by_hand_keys WHERE client = \(bind: client) AND key = \(bind: key)"
                    ).first()
                    guard let row, try row.decode(column: "fingerprint", as: String.self) == fingerprint else {
                        throw HTTPProblem(.idempotencyKeyReused, detail: "this key was used with another request")
                    }
                    guard let location = try row.decode(column: "location", as: String?.self),
                        let response = try row.decode(column: "response", as: String?.self)
                    else { throw HTTPProblem(status: .conflict, detail: "this key's request is in progress") }
                    return (location, response, true)
                }
                let taken = try await sql.raw(
                    "UPDATE products SET stock = stock - \(bind: input.quantity) WHERE sku = \(bind: input.sku) AND stock >= \(bind: input.quantity) RETURNING stock"
                ).all()
                guard !taken.isEmpty else {
                    throw try await Product.find(input.sku, on: tx.fluent) == nil
                        ? HTTPProblem(.notFound, detail: "there is no product with this sku")
                        : HTTPProblem(HTTPProblem.Code("out_of_stock"), status: .conflict, title: "Out of stock")
                }
                try await order.create(on: tx.fluent)
                let response = OrderResponse(id: order.id!, client: client, sku: order.sku, quantity: order.quantity)
                let body = String(decoding: try JSONEncoder().encode(response), as: UTF8.self)
                let location = "/orders/\(order.id!)"
                try await sql.raw(
                    "UPDATE bench_by_hand_keys SET location = \(bind: location), response = \(bind: body) WHERE client = \(bind: client) AND key = \(bind: key)"
                ).run()
                return (location, body, false)
            }
            var headers = HTTPHeaders([("Content-Type", "application/json"), ("Location", answer.location)])
            if answer.replayed { headers.add(name: "Idempotent-Replayed", value: "true") }
            return Response(status: .created, headers: headers, body: .init(string: answer.body))
        }
    }

    /// Checks a shop's route before measuring it: the same key twice gives one order and the same
    /// answer (the second replayed), and the key with another body is refused with 422.
    static func checkExactlyOnce(_ client: HTTPClient, port: Int, path: String) async throws {
        func send(_ key: String, quantity: Int) async throws -> (status: UInt, location: String?, body: String, replayed: Bool) {
            let request = orderRequest(port: port, path: path, key: key, quantity: quantity)
            let response = try await client.execute(request, timeout: .seconds(60))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (
                response.status.code, response.headers.first(name: "Location"), String(buffer: body),
                response.headers.first(name: "Idempotent-Replayed") == "true"
            )
        }
        func stock() async throws -> Int64 {
            let response = try await client.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(port)/products/bench"),
                timeout: .seconds(60)
            )
            let body = try await response.body.collect(upTo: 1 << 20)
            return try JSONDecoder().decode(ProductResponse.self, from: Data(buffer: body)).stock
        }
        let key = "\"check-\(run)-\(path)\""
        let before = try await stock()
        // Two at once (one waits on the other's claim), then the key with another body.
        async let a = send(key, quantity: 1)
        async let b = send(key, quantity: 1)
        let (one, two) = try await (a, b)
        let other = try await send(key, quantity: 2)
        let taken = try await before - stock()
        guard one.status == 201, two.status == 201, one.replayed != two.replayed, one.location != nil, one.location == two.location,
            one.body == two.body, other.status == 422, taken == 1
        else {
            throw Abort(
                .internalServerError,
                reason: "/\(path) is not exactly-once: \(one), \(two), another body got \(other.status), stock taken \(taken)"
            )
        }
    }

    /// `POST /<path>` for one unit (or `quantity`) of the bench product, as client `bench`, with `key`.
    static func orderRequest(port: Int, path: String, key: String, quantity: Int = 1) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/\(path)")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Client-Id", value: "bench")
        request.headers.add(name: "Idempotency-Key", value: key)
        request.body = .bytes(ByteBuffer(string: #"{"sku":"bench","quantity":\#(quantity)}"#))
        return request
    }

    /// Sends `requests` POST /orders over `connections` concurrent senders; returns requests per second.
    static func measure(
        _ client: HTTPClient,
        port: Int,
        path: String = "orders",
        requests: Int,
        connections: Int,
        key: @escaping @Sendable (Int) -> Int
    ) async throws -> Double {
        let run = Self.run
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<connections {
                group.addTask {
                    var index = sender
                    while index < requests {
                        let request = orderRequest(port: port, path: path, key: "\"bench-\(run)-\(key(index))\"")
                        let response = try await client.execute(request, timeout: .seconds(60))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        guard response.status == .created else {
                            throw Abort(.internalServerError, reason: "the shop answered \(response.status.code) during the benchmark")
                        }
                        index += connections
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        return Double(requests) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
    }

    /// This run's part of every key: a database reused by another run (`DATABASE_URL`) has keys
    /// of its own, which would otherwise be replayed instead of measured.
    static let run = UUID().uuidString.prefix(8).lowercased()

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}
