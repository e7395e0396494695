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

/// The reference shop's domain routes over the HTTP edge: wallets, seats, order events, and the
/// OpenAPI document that describes them.
extension HTTPEdgeTests {
    @Test("wallets: transfer ids are idempotency keys, no overdraft, balances with ETag and 304", arguments: sqlBackends)
    func wallets(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            #expect(try await client.send(.PUT, "/wallets/alice").status == 201)
            #expect(try await client.send(.PUT, "/wallets/alice").status == 200)
            #expect(try await client.send(.PUT, "/wallets/alice", headers: [("If-None-Match", "*")]).status == 200)
            #expect(try await client.send(.PUT, "/wallets/bob").status == 201)
            let fund = #"{"id":"fund-1","from":"bank","to":"alice","amountCents":1000}"#
            let funded = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<16 { group.addTask { try await client.send(.POST, "/wallets/transfers", json: fund).status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(funded.filter { $0 == 201 }.count == 1 && funded.filter { $0 == 200 }.count == 15)
            // 16 concurrent transfers of 100 from a wallet of 1,000: exactly 10 succeed.
            let spends = try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
                for index in 0..<16 {
                    group.addTask {
                        try await client.send(
                            .POST,
                            "/wallets/transfers",
                            json: #"{"id":"spend-\#(index)","from":"alice","to":"bob","amountCents":100}"#
                        )
                    }
                }
                return try await group.reduce(into: [HTTPExchange]()) { $0.append($1) }
            }
            #expect(spends.filter { $0.status == 201 }.count == 10)
            #expect(spends.filter { $0.status == 409 }.allSatisfy { $0.problemCode == "exceeds_credits" })
            let alice = try await client.send(.GET, "/wallets/alice")
            #expect(alice.status == 200 && alice.body.contains("\"balanceCents\":0"))
            let tag = try #require(alice.header("ETag"))
            let unchanged = try await client.send(.GET, "/wallets/alice", headers: [("If-None-Match", tag)])
            #expect(unchanged.status == 304)
            let bob = try await client.send(.GET, "/wallets/bob", headers: [("If-None-Match", tag)])
            #expect(bob.status == 200 && bob.body.contains("\"balanceCents\":1000"))
            let unknown = try await client.send(
                .POST,
                "/wallets/transfers",
                json: #"{"id":"x","from":"alice","to":"carol","amountCents":1}"#
            )
            #expect(unknown.status == 404)
        }
    }

    @Test("seats: a hold key holds once, a sold-out show refuses, a hold settles once", arguments: sqlBackends)
    func seats(_ backend: SQLBackend) async throws {
        var configuration = ShopConfiguration()
        configuration.seats = ["gig": 10]
        try await withShop(backend, configuration) { client, _, _ in
            // 32 buyers race for 3 seats each: 3 get them.
            let holds = try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
                for index in 0..<32 {
                    group.addTask {
                        try await client.send(.POST, "/seats/gig/holds", json: #"{"key":"buyer-\#(index)","seats":3,"ttlSeconds":600}"#)
                    }
                }
                return try await group.reduce(into: [HTTPExchange]()) { $0.append($1) }
            }
            #expect(holds.filter { $0.status == 201 }.count == 3)
            #expect(holds.filter { $0.status == 409 }.allSatisfy { $0.problemCode == "sold_out" })
            let winner = try #require(holds.first { $0.status == 201 })
            let key = try #require(JSONSerialization.jsonObject(with: Data(winner.body.utf8)) as? [String: Any])["key"] as? String
            let again = try await client.send(.POST, "/seats/gig/holds", json: #"{"key":"\#(key!)","seats":3,"ttlSeconds":600}"#)
            #expect(again.status == 200 && again.body.contains("\"state\":\"held\""))
            let confirmed = try await client.send(.POST, "/seats/holds/\(key!)/confirm")
            #expect(confirmed.status == 200 && confirmed.body.contains("confirmed"))
            let confirmedAgain = try await client.send(.POST, "/seats/holds/\(key!)/confirm")
            #expect(confirmedAgain.status == 200 && confirmedAgain.body == confirmed.body)
            let otherSeats = try await client.send(.POST, "/seats/gig/holds", json: #"{"key":"\#(key!)","seats":1,"ttlSeconds":600}"#)
            #expect(otherSeats.status == 409 && otherSeats.problemCode == "hold_key_reused")
            let released = try await client.send(.POST, "/seats/holds/\(key!)/release")
            #expect(released.status == 409 && released.problemCode == "hold_not_live")
            let missing = try await client.send(.POST, "/seats/holds/nobody/confirm")
            #expect(missing.status == 404)
        }
    }

    @Test(
        "events: shuffled and duplicated order events end where in-order application does; impossible moves refused",
        arguments: sqlBackends
    )
    func events(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            func event(_ id: String, _ order: String, _ sequence: Int, _ type: String) -> String {
                #"{"id":"\#(id)","order":"\#(order)","sequence":\#(sequence),"type":"\#(type)"}"#
            }
            // Order a: created, paid, shipped — delivered 3, 1, 3, 2.
            let a = [
                event("a3", "a", 3, "OrderShipped"), event("a1", "a", 1, "OrderCreated"), event("a3", "a", 3, "OrderShipped"),
                event("a2", "a", 2, "PaymentCaptured"),
            ]
            var outcomes: [String] = []
            for body in a {
                let response = try await client.send(.POST, "/events", json: body)
                #expect(response.status == 202)
                let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
                outcomes.append(object["outcome"] as? String ?? "")
            }
            #expect(outcomes == ["parked", "applied", "duplicate", "applied"])
            let stateA = try await client.send(.GET, "/events/orders/a")
            #expect(stateA.body.contains("\"state\":\"shipped\"") && stateA.body.contains("\"head\":3"))
            // Order b: cancelled, then a warehouse's late OrderShipped: refused, the order stays cancelled.
            for body in [event("b2", "b", 2, "OrderCancelled"), event("b1", "b", 1, "OrderCreated"), event("b3", "b", 3, "OrderShipped")] {
                #expect(try await client.send(.POST, "/events", json: body).status == 202)
            }
            let stateB = try await client.send(.GET, "/events/orders/b")
            #expect(stateB.body.contains("\"state\":\"cancelled\"") && stateB.body.contains("\"head\":3"))
            let reused = try await client.send(.POST, "/events", json: event("a1", "b", 9, "OrderCreated"))
            #expect(reused.status == 409 && reused.problemCode == "event_id_reused")
            let bad = try await client.send(.POST, "/events", json: event(#"c\u0000"#, "c", 1, "OrderCreated"))
            #expect(bad.status == 400)
        }
    }

    @Test("GET /openapi.json documents exactly the shop's routes, and /health answers")
    func openAPIMatchesRoutes() async throws {
        try await withStore(.sqlite) { store, _ in
            try await openAPICheck(store)
        }
    }

    private func openAPICheck<S: SQLStore>(_ store: S) async throws {
        var configuration = ShopConfiguration()
        configuration.healthTimeout = .seconds(30)  // a loaded test machine; the bound has its own test
        let shop = try Shop(store: store, configuration: configuration)
        try await shop.setUp()
        let router = try shop.router()
        let routes = Set(router.routes.map { "\($0.method.rawValue) \($0.path.description.hasPrefix("/") ? "" : "/")\($0.path)" })
        try await withInProcessServer(router) { client in
            let health = try await client.send(.GET, "/health")
            #expect(health.status == 200 && health.body.contains("\"ok\""))
            let response = try await client.send(.GET, "/openapi.json")
            #expect(response.status == 200 && response.header("Content-Type") == "application/json")
            let document = try #require(try JSONSerialization.jsonObject(with: Data(response.body.utf8)) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            let documented = Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
            #expect(documented == routes)
            // Every status POST /orders can answer: the body timeout's 408, the key in progress
            // (409) and a store failing over (503) with Retry-After, a response too large to store (500).
            let orders = try #require((paths["/orders"]?["post"] as? [String: Any])?["responses"] as? [String: Any])
            #expect(Set(orders.keys) == ["201", "400", "404", "408", "409", "413", "422", "500", "503"])
            // Every POST and PUT can answer the body timeout's 408 and the body limit's 413 (the
            // middleware reads a body a client sends, whether or not the route takes one); every
            // route on the store a store failing over (503).
            for (path, operations) in paths where !["/metrics", "/openapi.json"].contains(path) {
                for (method, operation) in operations {
                    let operation = try #require(operation as? [String: Any])
                    let statuses = Set(try #require(operation["responses"] as? [String: Any]).keys)
                    #expect(statuses.contains("503"), "\(method) \(path)")
                    if ["post", "put"].contains(method) { #expect(statuses.isSuperset(of: ["408", "413"]), "\(method) \(path)") }
                }
            }
            // A read with If-Match naming another version is 412, as the document says.
            _ = try await client.send(
                .PUT,
                "/products/gadget",
                headers: [("If-None-Match", "*")],
                json: #"{"name":"Gadget","priceCents":100}"#
            )
            let stale = try await client.send(.GET, "/products/gadget", headers: [("If-Match", "\"999\"")])
            #expect(stale.status == 412, "\(stale.status) \(stale.body)")
            let product = try #require((paths["/products/{sku}"]?["get"] as? [String: Any])?["responses"] as? [String: Any])
            #expect(product["412"] != nil)
        }
    }
}
