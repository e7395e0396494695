import Foundation
import Testing
import Unrace

/// The Idempotency-Key contract, as the same test bodies against the Hummingbird and the Vapor
/// middleware (both thin adapters of UnraceHTTP's engine), on SQLite and PostgreSQL: Hummingbird's
/// in process (HummingbirdTesting's router client), Vapor's over real HTTP on loopback, its route
/// writes Fluent models in the claim's transaction.
@Suite("Idempotency contract on every framework", .timeLimit(.minutes(10)))
struct IdempotencyContractTests {
    static let order = #"{"sku":"widget","quantity":2}"#

    static func send(
        _ count: Int,
        _ client: any HTTPTestClient,
        key: String = "\"k-1\"",
        json: String = order
    ) async throws -> [HTTPExchange] {
        try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
            for _ in 0..<count {
                group.addTask {
                    try await client.send(.POST, "/orders", headers: [("Idempotency-Key", key), ("X-Client-Id", "alice")], json: json)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    @Test("64 concurrent retries of one key: one row, 64 identical answers, 63 replays", arguments: ContractCase.all)
    func sixtyFour(_ contract: ContractCase) async throws {
        try await withContractServer(contract) { server in
            let answers = try await Self.send(64, server.client)
            #expect(Set(answers.map(\.status)) == [201])
            #expect(Set(answers.map(\.body)).count == 1)
            #expect(Set(answers.map { $0.header("Location") }).count == 1)
            #expect(answers.filter(\.isReplay).count == 63)
            #expect(Set(answers.map { $0.header("Idempotency-Key-Retention") }) == ["86400"])
            #expect(try await server.countOrders() == 1)
        }
    }

    @Test("without the middleware the same 64 retries create 64 rows", arguments: ContractCase.all)
    func withoutMiddleware(_ contract: ContractCase) async throws {
        try await withContractServer(contract, idempotency: false) { server in
            let answers = try await Self.send(64, server.client)
            #expect(Set(answers.map(\.status)) == [201])
            #expect(try await server.countOrders() == 64)
        }
    }

    @Test(
        "a framework error the route throws is a problem, stored and replayed; the handler's own UnraceError is not relabelled; a body of exactly the limit is taken",
        arguments: ContractCase.all
    )
    func routeErrors(_ contract: ContractCase) async throws {
        try await withContractServer(contract) { server in
            let client = server.client
            let gone = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "g"), ("X-Client-Id", "alice")],
                json: Self.order(410)
            )
            #expect(gone.status == 410 && gone.problemCode == "http_410", "\(gone.status) \(gone.body)")
            // As ProblemMiddleware renders it on a route without the middleware: no message.
            #expect(!gone.body.contains("sold out"), "\(gone.body)")
            let again = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "g"), ("X-Client-Id", "alice")],
                json: Self.order(410)
            )
            #expect(again.status == 410 && again.isReplay && again.body == gone.body)
            // A framework 503 with its own Retry-After: that value, once (a second line would
            // make the field invalid), not the problem's default of 1.
            let busy = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "b"), ("X-Client-Id", "alice")],
                json: Self.order(503)
            )
            #expect(busy.status == 503 && busy.problemCode == "service_unavailable", "\(busy.status) \(busy.body)")
            #expect(busy.headers[canonicalForm: "Retry-After"] == ["120"], "\(busy.headers)")
            // A thrown status that carries no body is answered (and replayed) without one: bytes
            // after its head would be read as the next response on the connection.
            for status in [304, 204] {
                for attempt in 1...2 {
                    let bare = try await client.send(
                        .POST,
                        "/orders",
                        headers: [("Idempotency-Key", "bare-\(status)"), ("X-Client-Id", "alice")],
                        json: Self.order(status)
                    )
                    #expect(bare.status == status && bare.body.isEmpty, "\(status) #\(attempt): \(bare.status) \(bare.body)")
                    #expect(bare.header("Content-Type") == nil && bare.isReplay == (attempt == 2), "\(bare.headers)")
                }
            }
            let scoped = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "s"), ("X-Client-Id", "alice")],
                json: Self.order(400)
            )
            #expect(scoped.status == 500 && scoped.problemCode == "internal_error", "\(scoped.status) \(scoped.body)")
            let retried = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "s"), ("X-Client-Id", "alice")],
                json: Self.order(400)
            )
            #expect(retried.status == 500 && !retried.isReplay, "the key was left free")
            #expect(try await server.countOrders() == 0, "every write of a route that threw rolled back")
            // The contract's limit is 4,096 bytes: exactly that much is taken, in one piece or in chunks.
            let prefix = #"{"sku":"widget","quantity":1,"pad":""#
            let exact = prefix + String(repeating: "x", count: 4_096 - prefix.utf8.count - 2) + #""}"#
            #expect(exact.utf8.count == 4_096)
            for (key, extra) in [("whole", []), ("chunked", [("X-Test-Chunked", "1")])] {
                let taken = try await client.send(
                    .POST,
                    "/orders",
                    headers: [("Idempotency-Key", key), ("X-Client-Id", "alice")] + extra,
                    json: exact
                )
                #expect(taken.status == 201, "\(key): \(taken.status) \(taken.body)")
            }
        }
    }

    static func order(_ quantity: Int) -> String { #"{"sku":"widget","quantity":\#(quantity)}"# }

    @Test(
        "bad input: 400 without a key or a principal (or with it twice), 422 on reuse with another request, 413 over the body limit",
        arguments: ContractCase.all
    )
    func badInput(_ contract: ContractCase) async throws {
        try await withContractServer(contract) { server in
            let client = server.client
            let missing = try await client.send(.POST, "/orders", headers: [("X-Client-Id", "alice")], json: Self.order)
            #expect(missing.status == 400 && missing.problemCode == "idempotency_key_missing")
            let noPrincipal = try await client.send(.POST, "/orders", headers: [("Idempotency-Key", "p")], json: Self.order)
            #expect(noPrincipal.status == 400 && noPrincipal.problemCode == "principal_invalid")
            // Two principals: one may be the client's own, ahead of the one a gateway appended.
            let twice = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "p"), ("X-Client-Id", "mallory"), ("X-Client-Id", "alice")],
                json: Self.order
            )
            #expect(twice.status == 400 && twice.problemCode == "principal_invalid")
            let first = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "r"), ("X-Client-Id", "alice")],
                json: Self.order
            )
            #expect(first.status == 201)
            let reused = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "r"), ("X-Client-Id", "alice")],
                json: #"{"sku":"widget","quantity":3}"#
            )
            #expect(reused.status == 422 && reused.problemCode == "idempotency_key_reused")
            let reordered = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "r"), ("X-Client-Id", "alice")],
                json: #"{"quantity":2,"sku":"widget"}"#
            )
            #expect(reordered.status == 201 && reordered.isReplay && reordered.body == first.body)
            let huge = #"{"sku":"widget","quantity":1,"pad":""# + String(repeating: "x", count: 8_192) + #""}"#
            let tooLarge = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "big"), ("X-Client-Id", "alice")],
                json: huge
            )
            #expect(tooLarge.status == 413 && tooLarge.problemCode == "body_too_large")
            // Again on a warmed keep-alive connection, whose reads have grown to hold a whole
            // request: a body that arrives in one read with its head is over the limit too (a
            // socket's matter: Vapor's case; Hummingbird's runs in process).
            for attempt in 0..<12 {
                let again = try await client.send(
                    .POST,
                    "/orders",
                    headers: [("Idempotency-Key", "big-\(attempt)"), ("X-Client-Id", "alice")],
                    json: huge
                )
                #expect(again.status == 413 && again.problemCode == "body_too_large", "attempt \(attempt)")
            }
            #expect(try await server.countOrders() == 1)
        }
    }

    @Test("a thrown error rolls the route's writes back and is replayed; a 503 is not stored", arguments: ContractCase.all)
    func thrownErrorRollsBack(_ contract: ContractCase) async throws {
        try await withContractServer(contract) { server in
            let client = server.client
            let headers = [("Idempotency-Key", "t"), ("X-Client-Id", "alice")]
            let refused = try await client.send(.POST, "/orders", headers: headers, json: #"{"sku":"widget","quantity":0}"#)
            #expect(refused.status == 409 && refused.problemCode == "out_of_stock")
            #expect(try await server.countOrders() == 0, "the row the route wrote before it threw rolled back")
            let again = try await client.send(.POST, "/orders", headers: headers, json: #"{"sku":"widget","quantity":0}"#)
            #expect(again.status == 409 && again.isReplay)
            let unavailable = [("Idempotency-Key", "u"), ("X-Client-Id", "alice")]
            #expect(try await client.send(.POST, "/orders", headers: unavailable, json: #"{"sku":"widget","quantity":500}"#).status == 503)
            #expect(try await server.countOrders() == 0, "a response that is not stored commits nothing")
            let retried = try await client.send(.POST, "/orders", headers: unavailable, json: #"{"sku":"widget","quantity":500}"#)
            #expect(retried.status == 503 && !retried.isReplay, "the key was left free")
        }
    }

    @Test(
        "conflict mode: a retry while the first request runs gets 409 with Retry-After, then the stored answer",
        arguments: ContractCase.all
    )
    func conflictWhileInProgress(_ contract: ContractCase) async throws {
        try await withContractServer(contract, whileInProgress: .conflict) { server in
            let client = server.client
            let headers = [("Idempotency-Key", "w"), ("X-Client-Id", "alice")]
            defer { server.gate.release.open() }
            async let first = client.send(.POST, "/work", headers: headers, json: "{}")
            try await within(.seconds(60), "the first request's handler") { await server.gate.entered.wait() }
            let during = try await client.send(.POST, "/work", headers: headers, json: "{}")
            #expect(during.status == 409 && during.problemCode == "request_in_progress" && during.header("Retry-After") == "1")
            server.gate.release.open()
            #expect(try await first.status == 201)
            let after = try await client.send(.POST, "/work", headers: headers, json: "{}")
            #expect(after.status == 201 && after.isReplay)
            #expect(server.gate.runs == 1)
            #expect(try await server.countOrders() == 1)
        }
    }

    @Test(
        "preconditions: 428 without If-Match, 412 on a stale tag or an existing resource under If-None-Match: *",
        arguments: ContractCase.all
    )
    func preconditions(_ contract: ContractCase) async throws {
        try await withContractServer(contract) { server in
            let client = server.client
            let create = try await client.send(.PUT, "/products/p1", headers: [("If-None-Match", "*")], json: #"{"name":"one"}"#)
            #expect(create.status == 201 && create.header("ETag") == "\"1\"")
            let again = try await client.send(.PUT, "/products/p1", headers: [("If-None-Match", "*")], json: #"{"name":"one"}"#)
            #expect(again.status == 412 && again.problemCode == "precondition_failed")
            let unconditional = try await client.send(.PUT, "/products/p1", json: #"{"name":"two"}"#)
            #expect(unconditional.status == 428 && unconditional.problemCode == "precondition_required")
            let stale = try await client.send(.PUT, "/products/p1", headers: [("If-Match", "\"0\"")], json: #"{"name":"two"}"#)
            #expect(stale.status == 412)
            let weak = try await client.send(.PUT, "/products/p1", headers: [("If-Match", "W/\"1\"")], json: #"{"name":"two"}"#)
            #expect(weak.status == 412, "If-Match compares strongly")
            let current = try await client.send(.PUT, "/products/p1", headers: [("If-Match", "\"1\"")], json: #"{"name":"two"}"#)
            #expect(current.status == 200 && current.header("ETag") == "\"2\"")
            let any = try await client.send(.PUT, "/products/p1", headers: [("If-Match", "*")], json: #"{"name":"three"}"#)
            #expect(any.status == 200 && any.header("ETag") == "\"3\"")
            let malformed = try await client.send(.PUT, "/products/p1", headers: [("If-Match", "unquoted")], json: #"{"name":"x"}"#)
            #expect(malformed.status == 400 && malformed.problemCode == "condition_invalid")
        }
    }
}
