import Foundation
import Testing
import Unrace
import UnracePostgres
import UnraceProbe

/// The Vapor example (`Examples/VaporShop`) as its users run it: a real process, on SQLite and on
/// PostgreSQL, two of them sharing one database.
@Suite("Vapor example", .timeLimit(.minutes(10)))
struct VaporShopTests {
    static var binary: String { ChildProcess.binary.deletingLastPathComponent().appendingPathComponent("VaporShop").path }

    static func start(_ environment: [String: String]) async throws -> (ChildProcess, LiveClient) {
        let port = try freeLoopbackPort()
        let shop = try ChildProcess(
            executable: binary,
            ["serve", "--hostname", "127.0.0.1", "--port", String(port)],
            environment: environment,
            errors: .captured
        )
        try await shop.waitFor("Server started on")
        return (shop, LiveClient(port: port))
    }

    static func order(_ client: LiveClient, key: String, quantity: Int = 1) async throws -> HTTPExchange {
        try await client.send(
            .POST,
            "/orders",
            headers: [("Idempotency-Key", "\"\(key)\""), ("X-Client-Id", "alice")],
            json: #"{"sku":"widget","quantity":\#(quantity)}"#
        )
    }

    @Test("on SQLite: an order once per key, replayed; stock taken once; PUT needs If-Match; GET answers 304")
    func sqlite() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("vaporshop"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (shop, client) = try await Self.start(["SQLITE_PATH": folder.appendingPathComponent("shop.sqlite").path])
        defer { shop.sendKill() }
        let first = try await Self.order(client, key: "o-1", quantity: 2)
        let again = try await Self.order(client, key: "o-1", quantity: 2)
        #expect(first.status == 201 && again.status == 201 && again.isReplay && again.body == first.body)
        #expect(try await Self.order(client, key: "o-1", quantity: 3).status == 422)
        let product = try await client.send(.GET, "/products/widget")
        // The order took stock, which the product shows: its version (the ETag) moved from 1 to 2.
        #expect(product.status == 200 && product.body.contains("\"stock\":998") && product.header("ETag") == "\"2\"")
        #expect(try await client.send(.GET, "/products/widget", headers: [("If-None-Match", "\"1\"")]).status == 200)
        #expect(try await client.send(.GET, "/products/widget", headers: [("If-None-Match", "\"2\"")]).status == 304)
        #expect(try await client.send(.PUT, "/products/widget", json: #"{"name":"W","priceCents":1}"#).status == 428)
        #expect(
            try await client.send(.PUT, "/products/widget", headers: [("If-Match", "\"1\"")], json: #"{"name":"W","priceCents":1}"#).status
                == 412
        )
        #expect(
            try await client.send(.PUT, "/products/widget", headers: [("If-Match", "\"2\"")], json: #"{"name":"W","priceCents":1}"#).status
                == 200
        )
        let missing = try await client.send(.POST, "/orders", headers: [("X-Client-Id", "alice")], json: #"{"sku":"widget","quantity":1}"#)
        #expect(missing.status == 400 && missing.problemCode == "idempotency_key_missing")
    }

    @Test("a body that stops half way cannot hold the Vapor example: its connection is closed after IDLE_TIMEOUT_SECONDS")
    func stalledBody() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("vaporshop"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (shop, client) = try await Self.start([
            "SQLITE_PATH": folder.appendingPathComponent("shop.sqlite").path, "IDLE_TIMEOUT_SECONDS": "2",
        ])
        defer { shop.sendKill() }
        let stalled = try RawConnection(port: client.port)
        try stalled.send(ServeTimeoutTests.stalledUpload)
        #expect(await stalled.readUntilClosed(timeout: .seconds(30)).closed, "a stalled upload's connection is closed")
        #expect(try await client.send(.GET, "/products/widget").status == 200, "the shop still serves others")
    }

    @Test("unrace probe finds the Vapor example clean on every probe (SQLite)")
    func probed() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("vaporshop"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (shop, client) = try await Self.start(["SQLITE_PATH": folder.appendingPathComponent("shop.sqlite").path])
        defer { shop.sendKill() }
        let report = try await Prober(target: ProbeTests.shopTarget(client.port, countField: "stock"), options: ProbeTests.options).run()
        for result in report.results { #expect(result.verdict == .clean, "\(result.probe): \(result.summary) \(result.evidence)") }
        #expect(report.results.count == ProbeKind.allCases.count)
    }

    @Test(
        "VaporShop bench runs the three shops (plain, guarded, by hand) and reports their ratios (numbers come from a release build, not here)"
    )
    func bench() async throws {
        try await Self.bench(databaseURL: "", backend: "fluent-sqlite")  // SQLite, whatever the shell says
    }

    @Test(
        "on PostgreSQL too: the bench checks both exactly-once routes (a repeat replays, another body is 422) before measuring",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func benchOnPostgres() async throws {
        let database = uniqueName("vaporbench")
        try await TestPostgres.execute("CREATE DATABASE \(database)")
        let url = try TestPostgres.requireURL().replacingOccurrences(of: "/unrace_test", with: "/\(database)")
        do {
            try await Self.bench(databaseURL: url, backend: "fluent-postgres")
        } catch {
            try? await TestPostgres.execute("DROP DATABASE \(database) WITH (FORCE)")
            throw error
        }
        try await TestPostgres.execute("DROP DATABASE \(database) WITH (FORCE)")
    }

    /// Runs a short bench (its exactly-once checks included) and checks what it reports.
    static func bench(databaseURL: String, backend: String) async throws {
        let bench = try ChildProcess(
            executable: Self.binary,
            ["bench", "--requests", "100", "--connections", "4", "--rounds", "1", "--json"],
            environment: ["DATABASE_URL": databaseURL],
            errors: .captured
        )
        #expect(await bench.exitStatus() == 0, "\(bench.printed)")
        let line = try #require(bench.printed.split(separator: "\n").last { $0.hasPrefix("{") })
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(result["backend"] as? String == backend)
        #expect((result["throughputRatio"] as? Double ?? 0) > 0)
        #expect((result["plainPerSecond"] as? Double ?? 0) > 0 && (result["guardedPerSecond"] as? Double ?? 0) > 0)
        // The floor: the same route claiming its key and keeping its response by hand.
        let (plain, guarded, byHand) = (
            result["plainPerSecond"] as? Double ?? 0, result["guardedPerSecond"] as? Double ?? 0, result["byHandPerSecond"] as? Double ?? 0
        )
        #expect(byHand > 0)
        #expect(abs((result["floorRatio"] as? Double ?? 0) - byHand / plain) < 1e-9)
        #expect(abs((result["ownRatio"] as? Double ?? 0) - guarded / byHand) < 1e-9)
    }

    @Test(
        "two processes on one PostgreSQL, the same key sent to both at once: one order, every answer the same",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func twoProcesses() async throws {
        let database = uniqueName("vaporshop")
        try await TestPostgres.execute("CREATE DATABASE \(database)")
        let url = try TestPostgres.requireURL().replacingOccurrences(of: "/unrace_test", with: "/\(database)")
        do {
            // One after the other: Fluent's migrations are not safe against themselves.
            let (a, clientA) = try await Self.start(["DATABASE_URL": url])
            defer { a.sendKill() }
            let (b, clientB) = try await Self.start(["DATABASE_URL": url])
            defer { b.sendKill() }
            let answers = try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
                for index in 0..<32 {
                    group.addTask { try await Self.order(index.isMultiple(of: 2) ? clientA : clientB, key: "shared") }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(answers.map(\.status)) == [201])
            #expect(Set(answers.map(\.body)).count == 1)
            #expect(answers.filter(\.isReplay).count == 31)
            let orders = try await PostgresStore.withStore(url: url) { store in try await countRows(store, "orders") }
            #expect(orders == 1)
        } catch {
            try? await TestPostgres.execute("DROP DATABASE \(database) WITH (FORCE)")
            throw error
        }
        try await TestPostgres.execute("DROP DATABASE \(database) WITH (FORCE)")
    }
}
