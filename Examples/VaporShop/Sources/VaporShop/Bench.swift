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
/// it prints guarded ÷ plain throughput. Each shop has a database of its own: a new SQLite file,
/// or `DATABASE_URL`'s PostgreSQL database (both shops share it; keys never collide).
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
        /// guarded ÷ plain throughput (1.0: the middleware costs nothing).
        var throughputRatio: Double
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
            for idempotency in [false, true] {
                let app = try await Application.make(.production, logger: logger)
                shops.append((app, 0))
                try await Entrypoint.configure(
                    app,
                    idempotency: idempotency,
                    sqlitePath: folder.appendingPathComponent("shop-\(idempotency).sqlite").path
                )
                if try await Product.find("bench", on: app.db) == nil {
                    try await Product(sku: "bench", name: "Bench", priceCents: 1, stock: Int64.max / 2).create(on: app.db)
                }
                try await app.server.start(address: .hostname("127.0.0.1", port: 0))
                shops[shops.count - 1].port = app.http.server.shared.localAddress?.port ?? 0
            }
            let (plain, guarded) = (shops[0].port, shops[1].port)
            var next = 0
            func measure(_ port: Int) async throws -> Double {
                let first = next
                next += requests
                return try await Self.measure(client, port: port, requests: requests, connections: connections) { first + $0 }
            }
            // Warm both (connections, statement caches, the files' first pages), unmeasured.
            _ = try await measure(plain)
            _ = try await measure(guarded)
            var plainRates: [Double] = []
            var guardedRates: [Double] = []
            for round in 0..<rounds {
                // Take turns going first, so neither path always runs on a warmer machine.
                for guardedTurn in round % 2 == 0 ? [false, true] : [true, false] {
                    if guardedTurn { guardedRates.append(try await measure(guarded)) } else { plainRates.append(try await measure(plain)) }
                }
            }
            let result = Result(
                backend: (Environment.get("DATABASE_URL") ?? "").isEmpty ? "fluent-sqlite" : "fluent-postgres",
                requests: requests,
                connections: connections,
                rounds: rounds,
                plainPerSecond: Self.median(plainRates),
                guardedPerSecond: Self.median(guardedRates),
                throughputRatio: Self.median(guardedRates) / Self.median(plainRates)
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
        row("guarded ÷ without (throughput)", String(format: "%8.2f", result.throughputRatio))
    }

    /// Sends `requests` POST /orders over `connections` concurrent senders; returns requests per second.
    static func measure(
        _ client: HTTPClient,
        port: Int,
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
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/orders")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        request.headers.add(name: "X-Client-Id", value: "bench")
                        request.headers.add(name: "Idempotency-Key", value: "\"bench-\(run)-\(key(index))\"")
                        request.body = .bytes(ByteBuffer(string: #"{"sku":"bench","quantity":1}"#))
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
