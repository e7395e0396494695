import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Logging
import Testing
import Unrace
import UnraceFluent
import UnraceSQL
import UnraceVapor
import Vapor

// MARK: Vapor

/// The contract's order, as a Fluent model.
final class ContractOrder: Model, @unchecked Sendable {
    // @unchecked: Fluent models are classes with property wrappers; each request uses its own.
    static let schema = "contract_orders"
    @ID(custom: "id", generatedBy: .user) var id: String?
    @Field(key: "sku") var sku: String
    @Field(key: "quantity") var quantity: Int
    init() {}
    init(id: String, sku: String, quantity: Int) {
        self.id = id
        self.sku = sku
        self.quantity = quantity
    }
}

/// The contract's product, as a Fluent model with a version.
final class ContractProduct: Model, @unchecked Sendable {
    // @unchecked: as ContractOrder.
    static let schema = "contract_products"
    @ID(custom: "sku", generatedBy: .user) var id: String?
    @Field(key: "name") var name: String
    @Field(key: "version") var version: Int64
    init() {}
    init(sku: String, name: String, version: Int64) {
        self.id = sku
        self.name = name
        self.version = version
    }
}

struct CreateContractTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(ContractOrder.schema).field("id", .string, .identifier(auto: false))
            .field("sku", .string, .required).field("quantity", .int, .required).create()
        try await database.schema(ContractProduct.schema).field("sku", .string, .identifier(auto: false))
            .field("name", .string, .required).field("version", .int64, .required).create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(ContractOrder.schema).delete()
        try await database.schema(ContractProduct.schema).delete()
    }
}

enum VaporContract {
    static func serve(
        _ backend: SQLBackend,
        idempotency: Bool,
        configuration: IdempotencyConfiguration,
        _ body: (ContractServer) async throws -> Void
    ) async throws {
        var logger = Logger(label: "test.vapor")
        logger.logLevel = .warning
        let app = try await Vapor.Application.make(.testing, logger: logger)
        var cleanUp: (@Sendable () async -> Void)?
        do {
            switch backend {
            case .sqlite:
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-vapor"))
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                app.databases.use(
                    .sqlite(
                        .file(folder.appendingPathComponent("vapor.sqlite").path),
                        maxConnectionsPerEventLoop: 4,
                        connectionPoolTimeout: .seconds(60)
                    ),
                    as: .sqlite
                )
                cleanUp = { try? FileManager.default.removeItem(at: folder) }
            case .postgres:
                let schema = uniqueName("v")
                try await TestPostgres.execute("CREATE SCHEMA \(schema)")
                var postgres = try TestPostgres.fluentConfiguration()
                postgres.searchPath = [schema]
                app.databases.use(
                    .postgres(configuration: postgres, maxConnectionsPerEventLoop: 6, connectionPoolTimeout: .seconds(60)),
                    as: .psql
                )
                cleanUp = { try? await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE") }
            }
            app.migrations.add(CreateContractTables())
            try await app.autoMigrate()
            let store = try await FluentStore(databases: app.databases, stepTimeout: .seconds(300), logger: logger)
            let operations = try Operations(store: store, configuration: contractOperations)
            let gate = Gate()
            app.middleware = .init()
            app.middleware.use(UnraceVapor.ProblemMiddleware())
            let middleware: [any Vapor.Middleware] =
                idempotency
                ? [
                    try UnraceVapor.IdempotencyMiddleware(
                        operations: operations,
                        configuration: configuration,
                        principalHeader: "X-Client-Id"
                    )
                ]
                : []
            let guarded = app.grouped(middleware)
            guarded.post("orders") { req async throws -> Vapor.Response in
                let input = try req.content.decode(ContractOrderRequest.self)
                let order = ContractOrderResponse(id: UUID().uuidString.lowercased(), sku: input.sku, quantity: input.quantity)
                let write: @Sendable (any Database) async throws -> Void = { db in
                    try await ContractOrder(id: order.id, sku: order.sku, quantity: order.quantity).create(on: db)
                    if input.quantity == 0 { throw HTTPProblem(HTTPProblem.Code("out_of_stock"), status: .conflict, title: "Out of stock") }
                    if input.quantity == 410 { throw Abort(.gone, reason: "sold out") }
                    if input.quantity == 304 { throw Abort(.notModified) }
                    if input.quantity == 204 { throw Abort(.noContent) }
                    if input.quantity == 503 { throw Abort(.serviceUnavailable, headers: ["Retry-After": "120"]) }
                    if input.quantity == 400 { throw UnraceError(.invalidScope, "a tenant named in the body") }
                }
                if req.unrace.transaction != nil {
                    try await write(req.unrace.db)
                } else {
                    try await store.withTransaction { try await write($0.fluent) }
                }
                if input.quantity == 500 { return Vapor.Response(status: .serviceUnavailable) }
                return Vapor.Response(
                    status: .created,
                    headers: ["Content-Type": "application/json", "Location": "/orders/\(order.id)"],
                    body: .init(data: try JSONEncoder.sorted.encode(order))
                )
            }
            guarded.post("work") { req async throws -> Vapor.Response in
                _ = gate.run()
                gate.entered.open()
                await gate.release.wait()
                try await ContractOrder(id: UUID().uuidString, sku: "work", quantity: 1).create(on: req.unrace.db)
                return Vapor.Response(status: .created, headers: ["Content-Type": "application/json"], body: .init(string: "{}"))
            }
            app.put("products", ":sku") { req async throws -> Vapor.Response in
                let sku = try #require(req.parameters.get("sku"))
                let name = (try req.content.decode([String: String].self))["name"] ?? ""
                let current = try await ContractProduct.find(sku, on: req.db)
                let version: Int64 = try await store.withTransaction { tx in
                    let db = tx.fluent
                    switch try UnraceVapor.Preconditions().write(req, currentVersion: current?.version) {
                    case .create:
                        guard try await ContractProduct.find(sku, on: db) == nil else {
                            throw HTTPProblem(.preconditionFailed, detail: "created first")
                        }
                        try await ContractProduct(sku: sku, name: name, version: 1).create(on: db)
                        return 1
                    case .replace(let expected):
                        guard
                            let product = try await ContractProduct.query(on: db).filter(\.$id == sku).filter(\.$version == expected)
                                .first()
                        else {
                            throw HTTPProblem(.preconditionFailed, detail: "changed after If-Match was checked")
                        }
                        product.name = name
                        product.version = expected + 1
                        try await product.update(on: db)
                        return expected + 1
                    case .replaceExisting:
                        guard let product = try await ContractProduct.find(sku, on: db) else {
                            throw HTTPProblem(.preconditionFailed, detail: "gone")
                        }
                        product.name = name
                        product.version += 1
                        try await product.update(on: db)
                        return product.version
                    }
                }
                return Vapor.Response(status: current == nil ? .created : .ok, headers: ["ETag": EntityTag(version: version).description])
            }
            try await app.server.start(address: .hostname("127.0.0.1", port: 0))
            let port = try #require(app.http.server.shared.localAddress?.port)
            do {
                try await body(
                    ContractServer(
                        client: LiveClient(port: port),
                        gate: gate,
                        countOrders: { try await ContractOrder.query(on: app.db).count() }
                    )
                )
            } catch {
                await app.server.shutdown()
                throw error
            }
            await app.server.shutdown()
            try await app.asyncShutdown()
            await cleanUp?()
        } catch {
            try? await app.asyncShutdown()
            await cleanUp?()
            throw error
        }
    }
}

/// The contract apps' operations: a lease far longer than any test, so a key whose handler a test
/// holds stays in progress however long a loaded machine takes to send the retry (with the
/// default 30 s, a retry the whole suite's load delayed past it took the claim over and waited on
/// the held handler's row lock, and the conflict-mode test met its client's deadline in CI).
let contractOperations: OperationsConfiguration = {
    var configuration = OperationsConfiguration()
    configuration.lease = .seconds(600)
    return configuration
}()
