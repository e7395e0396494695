import Fluent
import Foundation
import SQLKit
import UnraceVapor
import Vapor

/// `POST /orders` body.
struct OrderRequest: Content {
    var sku: String
    var quantity: Int64
}

/// An order, as answered.
struct OrderResponse: Content {
    var id: String
    var client: String
    var sku: String
    var quantity: Int64
}

/// A product, as answered.
struct ProductResponse: Content {
    var sku: String
    var name: String
    var priceCents: Int64
    var stock: Int64
    var version: Int64
}

/// `PUT /products/:sku` body.
struct ProductRequest: Content {
    var name: String
    var priceCents: Int64
}

func routes(_ app: Application, operations: Operations<FluentStore>, idempotency: Bool) throws {
    app.get("health") { _ in ["status": "ok"] }

    // POST /orders is idempotent on its Idempotency-Key, per client (X-Client-Id): the stock it
    // takes, the order row and the stored response are one transaction.
    let orders =
        idempotency
        ? app.grouped(try IdempotencyMiddleware(operations: operations) { principal(of: $0) })
        : app.grouped([Middleware]())
    orders.post("orders") { req async throws -> Response in
        let input = try req.content.decode(OrderRequest.self)
        guard (1...1_000).contains(input.quantity) else { throw HTTPProblem(.badRequest, detail: "quantity must be between 1 and 1000") }
        guard let client = client(of: req) else { throw HTTPProblem(.principalInvalid, detail: "send X-Client-Id once") }
        let order = Order(
            id: UUID().uuidString.lowercased(),
            client: client,
            sku: input.sku,
            quantity: input.quantity
        )
        try await withOrderTransaction(req, operations.store) { db in
            // One atomic statement takes the stock, so concurrent orders never oversell. The stock
            // is part of the product's representation, so its version (the ETag) moves with it.
            let taken = try await (db as! any SQLDatabase).raw(
                "UPDATE products SET stock = stock - \(bind: input.quantity), version = version + 1 WHERE sku = \(bind: input.sku) AND stock >= \(bind: input.quantity) RETURNING stock"
            ).all()
            guard !taken.isEmpty else {
                throw try await Product.find(input.sku, on: db) == nil
                    ? HTTPProblem(.notFound, detail: "there is no product with this sku")
                    : HTTPProblem(HTTPProblem.Code("out_of_stock"), status: .conflict, title: "Out of stock")
            }
            try await order.create(on: db)
        }
        let response = try await OrderResponse(id: order.id!, client: order.client, sku: order.sku, quantity: order.quantity)
            .encodeResponse(for: req)
        response.status = .created
        response.headers.replaceOrAdd(name: .location, value: "/orders/\(order.id!)")
        return response
    }

    app.get("orders", ":id") { req async throws -> OrderResponse in
        guard let order = try await Order.find(req.parameters.get("id"), on: req.db) else { throw HTTPProblem(.notFound) }
        return OrderResponse(id: order.id!, client: order.client, sku: order.sku, quantity: order.quantity)
    }

    app.get("products", ":sku") { req async throws -> Response in
        let sku = try req.parameters.require("sku")
        let product = try await Product.find(sku, on: req.db)
        if try Preconditions().read(req, currentVersion: product?.version) == .notModified, let product {
            return Response(status: .notModified, headers: ["ETag": EntityTag(version: product.version).description])
        }
        guard let product else { throw HTTPProblem(.notFound, detail: "there is no product with this sku") }
        let response = try await ProductResponse(product).encodeResponse(for: req)
        response.headers.replaceOrAdd(name: .eTag, value: EntityTag(version: product.version).description)
        return response
    }

    // PUT /products/:sku changes a product only with If-Match (428 without it, 412 on a stale
    // version): the version is compared in the UPDATE itself, so a writer who got there first
    // makes it fail instead of being overwritten.
    app.put("products", ":sku") { req async throws -> Response in
        let sku = try req.parameters.require("sku")
        let input = try req.content.decode(ProductRequest.self)
        let current = try await Product.find(sku, on: req.db)
        let sql = req.db as! any SQLDatabase
        let version: Int64
        switch try Preconditions().write(req, currentVersion: current?.version) {
        case .create:
            let created = try await sql.raw(
                "INSERT INTO products (sku, name, price_cents, stock, version) VALUES (\(bind: sku), \(bind: input.name), \(bind: input.priceCents), 0, 1) ON CONFLICT (sku) DO NOTHING RETURNING version"
            ).all()
            guard !created.isEmpty else {
                throw HTTPProblem(.preconditionFailed, detail: "the product was created by another request first")
            }
            version = 1
        case .replace(let expected):
            let rows = try await sql.raw(
                "UPDATE products SET name = \(bind: input.name), price_cents = \(bind: input.priceCents), version = version + 1 WHERE sku = \(bind: sku) AND version = \(bind: expected) RETURNING version"
            ).all()
            guard let row = rows.first else {
                throw HTTPProblem(.preconditionFailed, detail: "the product changed after If-Match was checked")
            }
            version = try row.decode(column: "version", as: Int64.self)
        case .replaceExisting:
            let rows = try await sql.raw(
                "UPDATE products SET name = \(bind: input.name), price_cents = \(bind: input.priceCents), version = version + 1 WHERE sku = \(bind: sku) RETURNING version"
            ).all()
            guard let row = rows.first else { throw HTTPProblem(.preconditionFailed, detail: "the product is gone") }
            version = try row.decode(column: "version", as: Int64.self)
        }
        let response = Response(status: current == nil ? .created : .ok)
        response.headers.replaceOrAdd(name: .eTag, value: EntityTag(version: version).description)
        return response
    }
}

/// Runs `work` in the idempotent request's transaction (`req.unrace.db`), or in a transaction of
/// its own on a route without the middleware.
func withOrderTransaction(
    _ req: Request,
    _ store: FluentStore,
    _ work: @escaping @Sendable (any Database) async throws -> Void
) async throws {
    if req.unrace.transaction != nil { return try await work(req.unrace.db) }
    try await store.withTransaction { tx in try await work(tx.fluent) }
}

extension ProductResponse {
    init(_ product: Product) {
        self.init(sku: product.id ?? "", name: product.name, priceCents: product.priceCents, stock: product.stock, version: product.version)
    }
}

/// The client an order records, as the Hummingbird shop decides: its `X-Client-Id`, `anonymous`
/// without one, `nil` (400 `principal_invalid`) when it sends the header more than once.
func client(of req: Request) -> String? {
    let values = req.headers["X-Client-Id"]
    return values.isEmpty ? "anonymous" : PrincipalScope.headerValue(values)
}

/// Whose idempotency keys a request uses: `client:` and its `X-Client-Id`, or `anonymous`
/// without one — a principal no header value gives, so `X-Client-Id: anonymous` never replays
/// the responses of requests that sent none.
func principal(of req: Request) -> String? {
    req.headers["X-Client-Id"].isEmpty ? "anonymous" : client(of: req).map { "client:" + $0 }
}
