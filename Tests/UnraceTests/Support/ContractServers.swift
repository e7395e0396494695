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
