import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Hummingbird
import Logging
import Testing
import Unrace
import UnraceFluent
import UnraceHummingbird
import UnraceSQL
import UnraceVapor
import Vapor

/// The Idempotency-Key contract's test app, on either framework: the same routes, the same
/// answers, so the same test bodies run against both middlewares.
///
/// - `POST /orders` `{"sku", "quantity"}`: inserts an order in the request's transaction and
///   answers 201 with its id and `Location`; quantity 0 inserts, then throws 409 `out_of_stock`
///   (the insert must roll back); quantity 500 answers 503 (not stored); quantity 410 inserts,
///   then throws the framework's own error (`HTTPError`, `Abort`) with a message; quantity 503
///   throws the framework's own 503 with `Retry-After: 120`; quantities 304 and 204 insert, then
///   throw the framework's own error of that status (no body); quantity 400
///   inserts, then throws an `UnraceError` (`invalid_scope`) of the handler's own.
/// - `POST /work`: waits on the test's gate, inserts, answers 201 (for in-flight retries).
/// - `PUT /products/{sku}`: a versioned product under `If-Match` / `If-None-Match`.
enum Framework: String, CaseIterable, Sendable {
    case hummingbird, vapor
}

/// One framework on one database.
struct ContractCase: CustomTestStringConvertible, Sendable {
    let framework: Framework
    let backend: SQLBackend
    var testDescription: String { "\(framework.rawValue) on \(backend.rawValue)" }

    static let all: [ContractCase] = Framework.allCases.flatMap { framework in
        sqlBackends.map { ContractCase(framework: framework, backend: $0) }
    }
}

/// What a contract test sees of the running app.
struct ContractServer: Sendable {
    let client: any HTTPTestClient
    let gate: Gate
    let countOrders: @Sendable () async throws -> Int
}

/// Runs the contract app of `contract` for the duration of `body`: Hummingbird's in process,
/// Vapor's on a free loopback port.
func withContractServer(
    _ contract: ContractCase,
    idempotency: Bool = true,
    whileInProgress: WhileInProgress = .wait(upTo: .seconds(10)),
    _ body: (ContractServer) async throws -> Void
) async throws {
    var configuration = IdempotencyConfiguration()
    configuration.whileInProgress = whileInProgress
    configuration.requestBodyByteCountLimit = 4_096
    switch contract.framework {
    case .hummingbird:
        try await withStore(contract.backend) { store, _ in
            try await HummingbirdContract.serve(store, idempotency: idempotency, configuration: configuration, body)
        }
    case .vapor:
        try await VaporContract.serve(contract.backend, idempotency: idempotency, configuration: configuration, body)
    }
}

/// The order a request body asks for.
struct ContractOrderRequest: Codable, Sendable {
    var sku: String
    var quantity: Int
}

/// An order, as answered.
struct ContractOrderResponse: Codable, Sendable {
    var id: String
    var sku: String
    var quantity: Int
}

// MARK: Hummingbird

enum HummingbirdContract {
    static func serve<S: SQLStore>(
        _ store: S,
        idempotency: Bool,
        configuration: IdempotencyConfiguration,
        _ body: (ContractServer) async throws -> Void
    ) async throws {
        let orders = uniqueName("orders")
        let products = uniqueName("products")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(orders) (id TEXT PRIMARY KEY, sku TEXT NOT NULL, quantity BIGINT NOT NULL)")
            try await tx.execute("CREATE TABLE \(products) (sku TEXT PRIMARY KEY, name TEXT NOT NULL, version BIGINT NOT NULL)")
        }
        let gate = Gate()
        let operations = try Operations(store: store, configuration: contractOperations)
        let router = Router(context: UnraceRequestContext<S.Transaction>.self)
        router.add(middleware: UnraceHummingbird.ProblemMiddleware())
        let guarded = router.group()
        if idempotency {
            guarded.add(
                middleware: try UnraceHummingbird.IdempotencyMiddleware(
                    operations: operations,
                    principal: .header(.init("X-Client-Id")!),
                    configuration: configuration
                )
            )
        }
        @Sendable func write<T: Sendable>(
            _ context: UnraceRequestContext<S.Transaction>,
            _ work: (S.Transaction) async throws -> T
        ) async throws -> T {
            if let transaction = context.idempotency.transaction { return try await work(transaction) }
            return try await store.withTransaction(work)
        }
        guarded.post("orders") { request, context -> Hummingbird.Response in
            let input = try await request.decode(as: ContractOrderRequest.self, context: context)
            let order = ContractOrderResponse(id: UUID().uuidString.lowercased(), sku: input.sku, quantity: input.quantity)
            try await write(context) { tx in
                try await tx.execute(
                    "INSERT INTO \(orders) (id, sku, quantity) VALUES (?, ?, ?)",
                    [.text(order.id), .text(order.sku), .int(order.quantity)]
                )
                if input.quantity == 0 { throw HTTPProblem(HTTPProblem.Code("out_of_stock"), status: .conflict, title: "Out of stock") }
                if input.quantity == 410 { throw HTTPError(.gone, message: "sold out") }
                if input.quantity == 304 { throw HTTPError(.notModified) }
                if input.quantity == 204 { throw HTTPError(.noContent) }
                if input.quantity == 503 { throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "120"]) }
                if input.quantity == 400 { throw UnraceError(.invalidScope, "a tenant named in the body") }
            }
            if input.quantity == 500 { return Hummingbird.Response(status: .serviceUnavailable) }
            return Hummingbird.Response(
                status: .created,
                headers: [.contentType: "application/json", .location: "/orders/\(order.id)"],
                body: .init(byteBuffer: ByteBuffer(data: try JSONEncoder.sorted.encode(order)))
            )
        }
        guarded.post("work") { _, context -> Hummingbird.Response in
            _ = gate.run()
            gate.entered.open()
            await gate.release.waitUnlessCancelled()
            try await write(context) { tx in
                try await tx.execute("INSERT INTO \(orders) (id, sku, quantity) VALUES (?, 'work', 1)", [.text(UUID().uuidString)])
            }
            return Hummingbird.Response(
                status: .created,
                headers: [.contentType: "application/json"],
                body: .init(byteBuffer: ByteBuffer(string: "{}"))
            )
        }
        router.put("products/{sku}") { request, context -> Hummingbird.Response in
            let sku = try context.parameters.require("sku")
            let input = try await request.decode(as: [String: String].self, context: context)
            let name = input["name"] ?? ""
            let current = try await store.withTransaction { tx in
                try await tx.query("SELECT version FROM \(products) WHERE sku = ?", [.text(sku)]).first?.int64("version")
            }
            let version: Int64 = try await store.withTransaction { tx in
                switch try UnraceHummingbird.Preconditions().write(request, currentVersion: current) {
                case .create:
                    guard
                        try await tx.query(
                            "INSERT INTO \(products) (sku, name, version) VALUES (?, ?, 1) ON CONFLICT (sku) DO NOTHING RETURNING version",
                            [.text(sku), .text(name)]
                        ).first != nil
                    else { throw HTTPProblem(.preconditionFailed, detail: "created by another request first") }
                    return 1
                case .replace(let expected):
                    guard
                        let row = try await tx.query(
                            "UPDATE \(products) SET name = ?, version = version + 1 WHERE sku = ? AND version = ? RETURNING version",
                            [.text(name), .text(sku), .integer(expected)]
                        ).first
                    else { throw HTTPProblem(.preconditionFailed, detail: "changed after If-Match was checked") }
                    return try row.int64("version")
                case .replaceExisting:
                    guard
                        let row = try await tx.query(
                            "UPDATE \(products) SET name = ?, version = version + 1 WHERE sku = ? RETURNING version",
                            [.text(name), .text(sku)]
                        ).first
                    else { throw HTTPProblem(.preconditionFailed, detail: "gone") }
                    return try row.int64("version")
                }
            }
            return Hummingbird.Response(status: current == nil ? .created : .ok, headers: [.eTag: EntityTag(version: version).description])
        }
        try await withInProcessServer(router) { client in
            try await body(ContractServer(client: client, gate: gate, countOrders: { try await countRows(store, orders) }))
        }
    }
}

extension JSONEncoder {
    /// Sorted keys: the same value always encodes to the same bytes.
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}

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
