import Fluent
import Foundation

/// A product: stock taken by orders, and a version that moves with every change of either (an
/// order, or `PUT /products/:sku` under `If-Match`): its ETag.
final class Product: Model, @unchecked Sendable {
    // @unchecked: Fluent models are classes whose properties are wrappers; a request uses its own instance.
    static let schema = "products"

    @ID(custom: "sku", generatedBy: .user) var id: String?
    @Field(key: "name") var name: String
    @Field(key: "price_cents") var priceCents: Int64
    @Field(key: "stock") var stock: Int64
    @Field(key: "version") var version: Int64

    init() {}

    init(sku: String, name: String, priceCents: Int64, stock: Int64, version: Int64 = 1) {
        self.id = sku
        self.name = name
        self.priceCents = priceCents
        self.stock = stock
        self.version = version
    }
}

/// An order: written in the same transaction as the idempotency claim and the stored response.
final class Order: Model, @unchecked Sendable {
    // @unchecked: as Product.
    static let schema = "orders"

    @ID(custom: "id", generatedBy: .user) var id: String?
    @Field(key: "client") var client: String
    @Field(key: "sku") var sku: String
    @Field(key: "quantity") var quantity: Int64

    init() {}

    init(id: String, client: String, sku: String, quantity: Int64) {
        self.id = id
        self.client = client
        self.sku = sku
        self.quantity = quantity
    }
}

/// The shop's tables, and a `widget` with 1,000 in stock.
struct CreateShop: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Product.schema)
            .field("sku", .string, .identifier(auto: false))
            .field("name", .string, .required)
            .field("price_cents", .int64, .required)
            .field("stock", .int64, .required)
            .field("version", .int64, .required)
            .create()
        try await database.schema(Order.schema)
            .field("id", .string, .identifier(auto: false))
            .field("client", .string, .required)
            .field("sku", .string, .required)
            .field("quantity", .int64, .required)
            .create()
        try await Product(sku: "widget", name: "Widget", priceCents: 250, stock: 1_000).create(on: database)
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Order.schema).delete()
        try await database.schema(Product.schema).delete()
    }
}
