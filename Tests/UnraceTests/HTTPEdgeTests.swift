import Foundation
import Hummingbird
import NIOHTTP1
import Synchronization
import Testing
import Unrace
import UnraceHTTP
import UnraceHummingbird
import UnraceSQL
import UnraceShop

/// The HTTP edge: the reference shop and the middleware on each SQL store, in process, and `unrace
/// serve` over real HTTP on loopback.
@Suite("HTTP edge", .timeLimit(.minutes(10)))
struct HTTPEdgeTests {
    static let order = #"{"sku":"widget","quantity":2}"#

    @Test("64 concurrent POSTs with one key: one order, one stock decrement, 64 identical bodies, 63 replays", arguments: sqlBackends)
    func sixtyFourRetries(_ backend: SQLBackend) async throws {
        // Over real HTTP on loopback, as the middleware's documentation says it is tested.
        try await withLiveShop(backend) { client, store, _ in
            let responses = try await send(64, client) { _ in [("Idempotency-Key", "\"order-1\"")] }
            #expect(Set(responses.map(\.status)) == [201])
            #expect(Set(responses.map(\.body)).count == 1)
            #expect(responses.filter(\.isReplay).count == 63)
            #expect(Set(responses.map { $0.header("Location") }).count == 1)
            #expect(try await countRows(store, "shop_orders") == 1)
            #expect(try await countRows(store, "unrace_queue_messages") == 2, "the order's capture and email, once")
            #expect(try await available(store, "widget") == 998)
            #expect(Set(responses.map { $0.header("Idempotency-Key-Retention") }) == ["86400"])
        }
    }

    @Test("without the middleware the same 64 retries create duplicate orders", arguments: sqlBackends)
    func withoutMiddleware(_ backend: SQLBackend) async throws {
        var configuration = ShopConfiguration()
        configuration.idempotency = false
        try await withShop(backend, configuration) { client, store, _ in
            let responses = try await send(64, client) { _ in [("Idempotency-Key", "\"order-1\"")] }
            #expect(Set(responses.map(\.status)) == [201])
            #expect(try await countRows(store, "shop_orders") == 64)
            #expect(try await countRows(store, "unrace_queue_messages") == 128)
            #expect(try await available(store, "widget") == 1_000 - 128)
        }
    }

    @Test("one client's key never replays another client's response", arguments: sqlBackends)
    func principals(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, store, _ in
            let alice = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "k"), ("X-Client-Id", "alice")],
                json: Self.order
            )
            let bob = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "k"), ("X-Client-Id", "bob@example.com")],
                json: Self.order
            )
            let aliceAgain = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "k"), ("X-Client-Id", "alice")],
                json: Self.order
            )
            #expect(alice.status == 201 && bob.status == 201)
            #expect(!bob.isReplay)
            #expect(alice.header("Location") != bob.header("Location"))
            #expect(bob.body.contains("bob@example.com") && !bob.body.contains("alice"))
            #expect(aliceAgain.isReplay && aliceAgain.body == alice.body)
            #expect(try await countRows(store, "shop_orders") == 2)
        }
    }

    @Test(
        "bad input gets 4xx problem+json and stores nothing (over a socket: a body over the limit is refused mid-upload)",
        arguments: sqlBackends
    )
    func badInput(_ backend: SQLBackend) async throws {
        try await withLiveShop(backend) { client, store, _ in
            let missing = try await client.send(.POST, "/orders", json: Self.order)
            #expect(missing.status == 400 && missing.problemCode == "idempotency_key_missing")
            for header in [String(repeating: "k", count: 256), "a,b", "\"unterminated", "\"a\" x"] {
                let invalid = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", header)], json: Self.order)
                #expect(invalid.status == 400 && invalid.problemCode == "idempotency_key_invalid", "\(header.prefix(20))")
            }
            let twice = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
                json: Self.order
            )
            #expect(twice.status == 400 && twice.problemCode == "idempotency_key_invalid")
            let huge = #"{"sku":"widget","quantity":1,"pad":""# + repeatedASCII("x", count: 1 << 21) + #""}"#
            let tooLarge = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "big")], json: huge)
            #expect(tooLarge.status == 413 && tooLarge.problemCode == "body_too_large")
            #expect(tooLarge.header("Connection") == "close", "the rest of the upload is not read: the connection closes")
            let malformed = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "bad-json")], json: "{\"sku\":")
            #expect(malformed.status == 400 && malformed.problemCode == "bad_request")
            let quantity = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "q")],
                json: #"{"sku":"widget","quantity":9223372036854775807}"#
            )
            #expect(quantity.status == 400 && quantity.problemCode == "bad_request")
            #expect(try await countRows(store, "shop_orders") == 0)
            #expect(try await available(store, "widget") == 1_000)
            // A key the middleware refused before the handler ran was not consumed.
            let good = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "big")], json: Self.order)
            #expect(good.status == 201 && !good.isReplay)
            // A 400 the handler answered is a terminal answer: stored and replayed.
            let again = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "bad-json")], json: "{\"sku\":")
            #expect(again.status == 400 && again.isReplay && again.body == malformed.body)
        }
    }

    @Test("the same key with a different request gets 422, and the first response stays", arguments: sqlBackends)
    func keyReuse(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, store, _ in
            let first = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "k")], json: Self.order)
            let other = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "k")],
                json: #"{"sku":"widget","quantity":3}"#
            )
            let reordered = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "k")],
                json: #"{ "quantity": 2, "sku": "widget" }"#
            )
            #expect(first.status == 201)
            #expect(other.status == 422 && other.problemCode == "idempotency_key_reused")
            #expect(reordered.status == 201 && reordered.isReplay && reordered.body == first.body)
            #expect(try await countRows(store, "shop_orders") == 1)
        }
    }

    @Test("a thrown 409 rolls the handler's writes back and is replayed to retries", arguments: sqlBackends)
    func thrownErrorsRollBack(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, store, _ in
            let coupon = #"{"sku":"widget","quantity":2,"coupon":"WELCOME10"}"#
            let first = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "k1")], json: coupon)
            #expect(first.status == 201)
            // The second order takes stock before it finds the coupon used; that write must not stay.
            let second = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "k2")], json: coupon)
            #expect(second.status == 409 && second.problemCode == "coupon_redeemed" && !second.isReplay)
            let retry = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "k2")], json: coupon)
            #expect(retry.status == 409 && retry.isReplay && retry.body == second.body)
            #expect(try await countRows(store, "shop_orders") == 1)
            #expect(try await available(store, "widget") == 998)
        }
    }

    @Test("products: ETag is the version; 428 without If-Match, 412 on a stale one or an existing create", arguments: sqlBackends)
    func conditionalRequests(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            let widget = #"{"name":"Widget","priceCents":250}"#
            let created = try await client.send(.PUT, "/products/widget", headers: [("If-None-Match", "*")], json: widget)
            #expect(created.status == 201 && created.header("ETag") == "\"1\"")
            let again = try await client.send(.PUT, "/products/widget", headers: [("If-None-Match", "*")], json: widget)
            #expect(again.status == 412 && again.problemCode == "precondition_failed")
            let blind = try await client.send(.PUT, "/products/widget", json: widget)
            #expect(blind.status == 428 && blind.problemCode == "precondition_required")
            // Only If-None-Match: * stands in for If-Match; a tag list does not license an overwrite.
            let junk = try await client.send(.PUT, "/products/widget", headers: [("If-None-Match", "\"junk\"")], json: widget)
            #expect(junk.status == 428)
            let updated = try await client.send(
                .PUT,
                "/products/widget",
                headers: [("If-Match", "\"1\"")],
                json: #"{"name":"Widget","priceCents":300}"#
            )
            #expect(updated.status == 200 && updated.header("ETag") == "\"2\"")
            // A second writer that read version 1 loses instead of overwriting.
            let stale = try await client.send(
                .PUT,
                "/products/widget",
                headers: [("If-Match", "\"1\"")],
                json: #"{"name":"Widget","priceCents":100}"#
            )
            #expect(stale.status == 412)
            let weak = try await client.send(.PUT, "/products/widget", headers: [("If-Match", "W/\"2\"")], json: widget)
            #expect(weak.status == 412)
            let malformed = try await client.send(.PUT, "/products/widget", headers: [("If-Match", "2")], json: widget)
            #expect(malformed.status == 400 && malformed.problemCode == "condition_invalid")
            let read = try await client.send(.GET, "/products/widget")
            #expect(read.status == 200 && read.header("ETag") == "\"2\"" && read.body.contains("\"priceCents\":300"))
            let missing = try await client.send(.GET, "/products/nothing")
            #expect(missing.status == 404 && missing.problemCode == "not_found")
            // The representation shows the stock: an order that takes it moves the ETag, so a
            // client holding "2" gets the new stock (200, not 304) and its If-Match write 412.
            let available = try #require(read.body.firstMatch(of: /"available":(\d+)/).map { Int($0.1)! })
            let order = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "etag"), ("X-Client-Id", "alice")],
                json: Self.order
            )
            #expect(order.status == 201)
            let afterOrder = try await client.send(.GET, "/products/widget", headers: [("If-None-Match", "\"2\"")])
            #expect(afterOrder.status == 200 && afterOrder.header("ETag") == "\"3\"", "\(afterOrder.status) \(afterOrder.headers)")
            #expect(afterOrder.body.contains("\"available\":\(available - 2)"), "\(afterOrder.body)")
            let heldOld = try await client.send(.PUT, "/products/widget", headers: [("If-Match", "\"2\"")], json: widget)
            #expect(heldOld.status == 412)
            #expect(try await client.send(.GET, "/products/widget", headers: [("If-None-Match", "\"3\"")]).status == 304)
        }
    }

    @Test("WhileInProgress.conflict: a retry during the first request gets 409; after it, the stored response", arguments: sqlBackends)
    func conflictWhileInProgress(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            try await gatedServer(store, .conflict) { client, gate in
                async let first = client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                try await within(.seconds(60), "the first request's handler") { await gate.entered.wait() }
                let during = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(during.status == 409 && during.problemCode == "request_in_progress" && during.header("Retry-After") == "1")
                gate.release.open()
                let firstResponse = try await first
                #expect(firstResponse.status == 201 && !firstResponse.isReplay)
                #expect(firstResponse.header("Set-Cookie") == "session=first")  // the handler's own headers
                let after = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(after.status == 201 && after.isReplay && after.body == firstResponse.body)
                #expect(after.header("Set-Cookie") == nil)  // per-transfer headers are not replayed
                #expect(gate.runs == 1)
            }
        }
    }

    @Test("conflict mode: a claim whose holder died answers 409 until its lease ends, then a retry takes over", arguments: sqlBackends)
    func conflictTakeover(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            let clock = ManualWallClock()
            try await gatedServer(store, .conflict, clock: clock) { client, gate in
                gate.release.open()
                // A holder that claimed the key and died: a committed claim, never completed.
                #expect(try await claimAndDie(store, key: "k", principal: "everyone", lease: .seconds(5), clock: clock))
                let during = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(during.status == 409 && during.problemCode == "request_in_progress")
                #expect(gate.runs == 0)
                clock.advance(by: .seconds(6))
                let after = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(after.status == 201 && !after.isReplay)
                #expect(gate.runs == 1)
            }
        }
    }

    @Test("wait mode: a retry sent while the first may still run gets the first's response; the handler runs once", arguments: sqlBackends)
    func waitWhileInProgress(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            try await gatedServer(store, .wait(upTo: .seconds(30))) { client, gate in
                async let first = client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                try await within(.seconds(60), "the first request's handler") { await gate.entered.wait() }
                async let during = client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                gate.release.open()
                let (a, b) = try await (first, during)
                #expect(a.status == 201 && b.status == 201 && a.body == b.body)
                #expect([a.isReplay, b.isReplay].filter { $0 }.count == 1)
                #expect(gate.runs == 1)
            }
        }
    }

    @Test("a 5xx is not stored: its writes roll back and the retry runs the handler again", arguments: sqlBackends)
    func serverErrorsAreRetryable(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            try await gatedServer(store, .wait(upTo: .seconds(5)), failFirst: true) { client, gate in
                gate.release.open()
                let failed = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(failed.status == 503 && !failed.isReplay)
                #expect(try await countRows(store, gate.table) == 0)
                let retried = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(retried.status == 201 && !retried.isReplay)
                let replayed = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(replayed.isReplay && replayed.body == retried.body)
                #expect(gate.runs == 2)
                #expect(try await countRows(store, gate.table) == 1)
            }
        }
    }

    @Test(
        "unrace serve: two processes on one PostgreSQL, one key sent to both at once → one order; SIGTERM stops them",
        .enabled(if: TestPostgres.required)
    )
    func twoProcesses() async throws {
        try await withStore(.postgres) { store, location in
            let servers = try [ChildProcess(["serve", "--port", "0", "--database", location])]
            defer { servers[0].sendKill() }  // a test that fails early leaves no server running
            try await servers[0].waitFor("listening on")  // the first creates the shop's tables
            let second = try ChildProcess(["serve", "--port", "0", "--database", location])
            defer { second.sendKill() }
            try await second.waitFor("listening on")
            let clients = try (servers + [second]).map { child in
                guard
                    let port = child.printed.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
                else {
                    throw CancellationError()
                }
                return LiveClient(port: port)
            }
            let responses = try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
                for index in 0..<64 {
                    group.addTask {
                        try await clients[index % 2].send(.POST, "/orders", headers: [("Idempotency-Key", "shared")], json: Self.order)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(responses.map(\.status)) == [201])
            #expect(Set(responses.map(\.body)).count == 1)
            #expect(responses.filter(\.isReplay).count == 63)
            #expect(try await countRows(store, "shop_orders") == 1)
            #expect(try await available(store, "widget") == 998)
            for child in servers + [second] { #expect(await child.terminate() == 0) }
        }
    }

    // MARK: - Helpers

    private func send(
        _ count: Int,
        _ client: some HTTPTestClient,
        headers: @escaping @Sendable (Int) -> [(String, String)]
    ) async throws -> [HTTPExchange] {
        try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
            for index in 0..<count {
                group.addTask { try await client.send(.POST, "/orders", headers: headers(index), json: Self.order) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    private func available(_ store: any SQLStore, _ sku: String) async throws -> Int64 {
        try await read(store, sku)
    }

    private func read<S: SQLStore>(_ store: S, _ sku: String) async throws -> Int64 {
        try await store.withTransaction { tx in
            try await tx.query("SELECT available FROM shop_stock WHERE sku = ?", [.text(sku)])[0].int64("available")
        }
    }
}
