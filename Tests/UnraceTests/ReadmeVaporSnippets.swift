// swift-format-ignore-file
// The README's snippets stand here verbatim (ReadmeSnippetTests checks them line for line).
import Fluent
import FluentSQLiteDriver
import Foundation
import Logging
import Testing
import UnraceVapor
import Vapor

// The README's Vapor and Fluent snippets, verbatim, in functions with the names they assume;
// `ReadmeSnippetTests.readmeSnippetsAreHere` finds them here. This file does not import GRDB:
// Fluent's `Database` and GRDB's would clash (the GRDB snippets are in ReadmeGRDBSnippets.swift).

/// The order the Vapor snippet creates: a Fluent model answered as JSON.
private final class Order: Model, Content, @unchecked Sendable {
    // @unchecked: Fluent models are classes with property wrappers; each request uses its own.
    static let schema = "readme_orders"
    @ID(custom: "id", generatedBy: .user) var id: String?
    @Field(key: "sku") var sku: String
    init() {}
    init(id: String, sku: String) {
        self.id = id
        self.sku = sku
    }
}

private struct OrderMessage: Sendable {
    var orderID: String
    var sku: String
}

struct CreateReadmeOrders: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Order.schema).field("id", .string, .identifier(auto: false)).field("sku", .string, .required).create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Order.schema).delete()
    }
}

// README: "Use it with Vapor and Fluent"
private func readmeVapor(_ app: Application) async throws -> Operations<FluentStore> {
    // In configure(app), after app.databases.use(…) and app.autoMigrate():
    let store = try await FluentStore(databases: app.databases, logger: app.logger)   // Unrace's tables, in your database
    let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(86_400))
    app.middleware.use(ProblemMiddleware())   // every error as application/problem+json

    let idempotent = app.grouped(try IdempotencyMiddleware(operations: operations, principalHeader: "X-Client-Id"))
    idempotent.post("orders") { req async throws -> Response in
        let order = try req.content.decode(Order.self)
        try await order.create(on: req.unrace.db)   // commits with the stored response, or not at all
        return try await order.encodeResponse(status: .created, for: req)
    }
    return operations
}

// README: a consumer on Fluent models, outside HTTP
private func readmeFluentConsumer(operations: Operations<FluentStore>, message: OrderMessage) async throws {
    _ = try await operations.perform(key: "order:\(message.orderID)", scope: "orders") { tx in
        try await Order(id: message.orderID, sku: message.sku).create(on: tx.fluent)   // in the claim's transaction
        return message.orderID
    }
}

@Suite("README snippets on Vapor and Fluent")
struct ReadmeVaporSnippetTests {
    @Test("the README's Vapor route creates one order for a retried request, and its consumer one for a redelivered message")
    func vaporSnippetRuns() async throws {
        try await withVaporApp(migration: CreateReadmeOrders(), configure: { app, _ in try await readmeVapor(app) }) { app, client, operations in
            var statuses: [Int] = []
            var replayed: [String] = []
            for _ in 0..<3 {
                let response = try await client.send(
                    .POST, "/orders", headers: [("Idempotency-Key", "\"o-1\""), ("X-Client-Id", "alice")], json: #"{"id":"o-1","sku":"widget"}"#
                )
                statuses.append(response.status)
                replayed.append(response.headers.first(name: "Idempotent-Replayed") ?? "-")
            }
            #expect(statuses == [201, 201, 201])
            #expect(replayed == ["-", "true", "true"])
            #expect(try await Order.query(on: app.db).count() == 1)
            for _ in 0..<2 { try await readmeFluentConsumer(operations: operations, message: OrderMessage(orderID: "o-2", sku: "gadget")) }
            #expect(try await Order.query(on: app.db).count() == 2)
        }
    }
}
