import ArgumentParser
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Unrace
import UnraceSQL
import UnraceShop

/// `unrace bench http`: POST /orders through the idempotency middleware against the same route
/// without it, both served by this process on loopback, in alternating rounds.
struct HTTPBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "POST /orders with a fresh Idempotency-Key per request ÷ the same route without the middleware; replays per second."
    )

    @OptionGroup var database: DatabaseOption
    @Option(help: "Requests per round (100 to 100000).") var requests = 2_000
    @Option(help: "Concurrent connections (1 to 256).") var connections = 16
    @Option(help: "Rounds of each kind, alternated (1 to 50).") var rounds = 5
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (100...100_000).contains(requests) else { throw ValidationError("--requests must be 100 to 100000") }
        guard (1...256).contains(connections) else { throw ValidationError("--connections must be 1 to 256") }
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1 to 50") }
    }

    func run() async throws {
        let job = HTTPBench(requests: requests, connections: connections, rounds: rounds)
        let result = try await withDatabase(database.location, logger: cliLogger("unrace.bench"), job)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
            return
        }
        print("unrace bench http: POST /orders over loopback HTTP, \(requests) requests per round, \(connections) connections,")
        print("\(rounds) alternating rounds of each, median round; client and servers share this process")
        print("")
        func row(_ label: String, _ value: String) { print(label.padding(toLength: 36, withPad: " ", startingAt: 0) + value) }
        row("backend", result.backend)
        row("without the middleware", String(format: "%8.0f req/s", result.plainPerSecond))
        row("with it, a fresh key per request", String(format: "%8.0f req/s", result.guardedPerSecond))
        row("guarded ÷ without (throughput)", String(format: "%8.2f", result.throughputRatio))
        row("replays of one completed key", String(format: "%8.0f req/s", result.replaysPerSecond))
    }
}

struct HTTPBenchResult: Codable, Sendable {
    var backend: String
    var requests: Int
    var connections: Int
    var plainPerSecond: Double
    var guardedPerSecond: Double
    /// guarded ÷ plain throughput (1.0 = the middleware costs nothing).
    var throughputRatio: Double
    var replaysPerSecond: Double
}

struct HTTPBench: StoreJob {
    let requests: Int
    let connections: Int
    let rounds: Int

    func run<S: SQLStore>(_ store: S) async throws -> HTTPBenchResult {
        var plain = ShopConfiguration()
        plain.idempotency = false
        plain.stock = ["bench": Int64.max / 2]
        var guarded = plain
        guarded.idempotency = true
        let logger = cliLogger("unrace.bench")
        let plainShop = try Shop(store: store, configuration: plain, logger: logger)
        try await plainShop.setUp()
        let guardedShop = try Shop(store: store, configuration: guarded, logger: logger)
        var clientConfiguration = HTTPClient.Configuration()
        clientConfiguration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let apps = [
            try plainShop.application(host: "127.0.0.1", port: 0) { continuation.yield($0) },
            try guardedShop.application(host: "127.0.0.1", port: 0) { continuation.yield($0) },
        ]
        // The two apps report their ports in either order; ask each which one it is.
        let group = ServiceGroup(configuration: .init(services: [apps[0], apps[1]], logger: logger))
        do {
            let result = try await measureAll(client, group, (ports, continuation), store.backendName)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    private func measureAll(
        _ client: HTTPClient,
        _ group: ServiceGroup,
        _ ports: (stream: AsyncStream<Int>, continuation: AsyncStream<Int>.Continuation),
        _ backend: String
    ) async throws -> HTTPBenchResult {
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                // A server that stops (or never binds) ends the wait for the ports.
                defer { ports.continuation.finish() }
                try await group.run()
            }
            var iterator = ports.stream.makeAsyncIterator()
            var found: [Int] = []
            while found.count < 2, let port = await iterator.next() { found.append(port) }
            guard found.count == 2 else {
                try await tasks.waitForAll()  // the servers' error, if they failed
                throw ServeFailure("a bench server stopped before it listened")
            }
            let plainPort = try await isGuarded(client, found[0]) ? found[1] : found[0]
            let guardedPort = plainPort == found[0] ? found[1] : found[0]
            var plainRates: [Double] = []
            var guardedRates: [Double] = []
            var next = 0
            for round in 0..<rounds {
                // Take turns going first, so neither path always runs on a warmer machine.
                for guardedTurn in round % 2 == 0 ? [false, true] : [true, false] {
                    let first = next
                    next += requests
                    let rate = try await measure(client, port: guardedTurn ? guardedPort : plainPort) { first + $0 }
                    if guardedTurn { guardedRates.append(rate) } else { plainRates.append(rate) }
                }
            }
            let replays = try await measure(client, port: guardedPort) { _ in -1 }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            let plainRate = median(plainRates)
            let guardedRate = median(guardedRates)
            return HTTPBenchResult(
                backend: backend,
                requests: requests,
                connections: connections,
                plainPerSecond: plainRate,
                guardedPerSecond: guardedRate,
                throughputRatio: guardedRate / plainRate,
                replaysPerSecond: replays
            )
        }
    }

    /// Whether the server on `port` runs the middleware: it refuses a POST without a key.
    private func isGuarded(_ client: HTTPClient, _ port: Int) async throws -> Bool {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/orders")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"sku":"bench","quantity":1}"#))
        let response = try await client.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        return response.status.code == 400
    }

    /// Sends `requests` POST /orders over `connections` concurrent senders; returns requests per second.
    /// `key(i)` names request i's Idempotency-Key (a negative number: one shared key).
    private func measure(_ client: HTTPClient, port: Int, key: @escaping @Sendable (Int) -> Int) async throws -> Double {
        let requests = requests
        let connections = connections
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sender in 0..<connections {
                group.addTask {
                    var index = sender
                    while index < requests {
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/orders")
                        request.method = .POST
                        request.headers.add(name: "Content-Type", value: "application/json")
                        let id = key(index)
                        request.headers.add(name: "Idempotency-Key", value: id < 0 ? "replayed" : "bench-\(id)")
                        request.body = .bytes(ByteBuffer(string: #"{"sku":"bench","quantity":1}"#))
                        let response = try await client.execute(request, timeout: .seconds(60))
                        _ = try await response.body.collect(upTo: 1 << 20)
                        guard response.status == .created else {
                            throw UnraceError(.storeFailure, "the shop answered \(response.status.code) during the benchmark")
                        }
                        index += connections
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(requests) / seconds
    }

    private func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
}
