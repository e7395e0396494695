import Foundation
import Testing
import Unrace

/// RFC 9110 conditional requests on the shop's products, completely: 304 for a current tag,
/// `If-Match: *` as an existence check (never a compare-and-set), and problem bodies for the
/// router's own errors.
@Suite("Conditional requests and problem bodies", .timeLimit(.minutes(10)))
struct ConditionalRequestTests {
    static let product = #"{"name":"Widget","priceCents":250}"#

    @Test("GET with If-None-Match naming the current version answers 304 with the ETag and no body", arguments: sqlBackends)
    func notModified(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            #expect(try await client.send(.PUT, "/products/widget", headers: [("If-None-Match", "*")], json: Self.product).status == 201)
            for tag in ["\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"] {
                let cached = try await client.send(.GET, "/products/widget", headers: [("If-None-Match", tag)])
                #expect(cached.status == 304 && cached.header("ETag") == "\"1\"" && cached.body.isEmpty, "\(tag)")
            }
            let stale = try await client.send(.GET, "/products/widget", headers: [("If-None-Match", "\"0\"")])
            #expect(stale.status == 200 && stale.header("ETag") == "\"1\"" && stale.body.contains("Widget"))
            let missing = try await client.send(.GET, "/products/nothing", headers: [("If-None-Match", "*")])
            #expect(missing.status == 404 && missing.problemCode == "not_found")
            // Without the condition the answer is 404, so the condition is ignored (RFC 9110 §13.2.1).
            let missingIfMatch = try await client.send(.GET, "/products/nothing", headers: [("If-Match", "\"1\"")])
            #expect(missingIfMatch.status == 404 && missingIfMatch.problemCode == "not_found", "\(missingIfMatch.status)")
            let wrongIfMatch = try await client.send(.GET, "/products/widget", headers: [("If-Match", "\"7\"")])
            #expect(wrongIfMatch.status == 412 && wrongIfMatch.problemCode == "precondition_failed")
            let malformed = try await client.send(.GET, "/products/widget", headers: [("If-None-Match", "unquoted")])
            #expect(malformed.status == 400 && malformed.problemCode == "condition_invalid")
        }
    }

    @Test("16 concurrent PUTs with If-Match: * on an existing product all succeed: * asks only that it exists", arguments: sqlBackends)
    func ifMatchAny(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            #expect(try await client.send(.PUT, "/products/widget", headers: [("If-None-Match", "*")], json: Self.product).status == 201)
            let answers = try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
                for price in 1...16 {
                    group.addTask {
                        try await client.send(
                            .PUT,
                            "/products/widget",
                            headers: [("If-Match", "*")],
                            json: #"{"name":"Widget","priceCents":\#(price)}"#
                        )
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.map(\.status) == Array(repeating: 200, count: 16))
            #expect(
                Set(answers.compactMap { $0.header("ETag") }) == Set((2...17).map { "\"\($0)\"" }),
                "each write landed on its own version"
            )
            let absent = try await client.send(.PUT, "/products/gadget", headers: [("If-Match", "*")], json: Self.product)
            #expect(absent.status == 412 && absent.problemCode == "precondition_failed", "* on a product that does not exist")
            // A named version is still a compare-and-set: of 8 writers naming version 17, one wins.
            let named = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 1...8 {
                    group.addTask {
                        try await client.send(.PUT, "/products/widget", headers: [("If-Match", "\"17\"")], json: Self.product).status
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(named.sorted() == [200] + Array(repeating: 412, count: 7))
        }
    }

    @Test(
        "the router's own errors are application/problem+json: an unknown route, a method the route does not take",
        arguments: sqlBackends
    )
    func routerProblems(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            let unknown = try await client.send(.GET, "/nowhere")
            #expect(
                unknown.status == 404 && unknown.header("Content-Type") == "application/problem+json" && unknown.problemCode == "not_found"
            )
            let method = try await client.send(.DELETE, "/products/widget")
            #expect([404, 405].contains(method.status) && method.header("Content-Type") == "application/problem+json")
        }
    }
}
