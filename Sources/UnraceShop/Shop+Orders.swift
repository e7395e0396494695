import Foundation
import Hummingbird
import Unrace
import UnraceHTTP
import UnraceSQL

/// `POST /orders` body.
struct OrderRequest: Decodable, Sendable {
    var sku: String
    var quantity: Int64
    var coupon: String?
}

/// An order, as stored and returned.
struct Order: ResponseCodable {
    var id: String
    var client: String
    var sku: String
    var quantity: Int64
    var coupon: String?
}

extension Shop {
    /// The most units one order may take.
    static var orderQuantityMaximum: Int64 { 1_000 }

    /// Creates an order: takes the stock, redeems the coupon and inserts the order, in one
    /// transaction (the idempotent request's, under the middleware).
    func createOrder(_ request: Request, _ context: Context) async throws -> Response {
        let input = try await decode(OrderRequest.self, request, context)
        guard ShopNames.isSKU(input.sku) else {
            throw HTTPProblem(.badRequest, detail: "sku must be 1 to 64 characters of A-Z a-z 0-9 _ -")
        }
        guard (1...Self.orderQuantityMaximum).contains(input.quantity) else {
            throw HTTPProblem(.badRequest, detail: "quantity must be between 1 and \(Self.orderQuantityMaximum)")
        }
        if let coupon = input.coupon, !ShopNames.isCoupon(coupon) {
            throw HTTPProblem(.badRequest, detail: "coupon must be 1 to 32 characters of A-Z 0-9")
        }
        guard let client = ShopConfiguration.client(of: request.headers) else {
            throw HTTPProblem(.principalInvalid, detail: "send X-Client-Id once")
        }
        let order = Order(
            id: UUID().uuidString.lowercased(),
            client: client,
            sku: input.sku,
            quantity: input.quantity,
            coupon: input.coupon
        )
        try await write(context) { tx in
            if let coupon = order.coupon {
                let redeemed = try await tx.query(
                    "UPDATE shop_coupons SET order_id = ? WHERE code = ? AND order_id IS NULL RETURNING code",
                    [.text(order.id), .text(coupon)]
                )
                if redeemed.isEmpty {
                    let known = try await tx.query("SELECT code FROM shop_coupons WHERE code = ?", [.text(coupon)])
                    throw known.isEmpty
                        ? HTTPProblem(.notFound, detail: "there is no such coupon")
                        : HTTPProblem(
                            ShopProblems.couponRedeemed,
                            status: .conflict,
                            title: "Coupon already redeemed",
                            detail: "each coupon can be redeemed once"
                        )
                }
            }
            let now = ISO8601DateFormatter().string(from: Date())
            try await tx.execute(
                "INSERT INTO shop_orders (id, client, sku, quantity, coupon, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    .text(order.id), .text(order.client), .text(order.sku), .integer(order.quantity),
                    order.coupon.map(SQLValue.text) ?? .null, .text(now),
                ]
            )
            // The outbox: the order's work for the workers commits with the order, or not at all,
            // numbered on the order's stream so the capture is applied before the email.
            // Checked: 1,000 units at the highest price accepted is far inside Int64.
            let amount = order.quantity * configuration.unitPriceCents
            try await queue.enqueue(
                [ShopTask.capture, .email].map { $0.message(order: order.id, amount: amount) },
                in: tx
            )
            // The stock row is every order's hot row: take it (and then the product's version,
            // which moves with it) last, so their locks are held only for the rest of the commit.
            let taken = try await tx.query(
                "UPDATE shop_stock SET available = available - ? WHERE sku = ? AND available >= ? RETURNING available",
                [.integer(order.quantity), .text(order.sku), .integer(order.quantity)]
            )
            if taken.isEmpty {
                let known = try await tx.query("SELECT available FROM shop_stock WHERE sku = ?", [.text(order.sku)])
                throw known.isEmpty
                    ? HTTPProblem(.notFound, detail: "there is no product with this sku")
                    : HTTPProblem(ShopProblems.outOfStock, status: .conflict, title: "Out of stock", detail: "not enough units left")
            }
            try await bumpProductVersion(order.sku, in: tx)
        }
        var response = try order.response(from: request, context: context)
        response.status = .created
        response.headers[.location] = "/orders/\(order.id)"
        return response
    }

    /// `GET /orders/{id}`.
    func order(_ request: Request, _ context: Context) async throws -> Order {
        let id = try context.parameters.require("id")
        let rows = try await store.withTransaction { tx in
            try await tx.query("SELECT id, client, sku, quantity, coupon FROM shop_orders WHERE id = ?", [.text(id)])
        }
        guard let row = rows.first else { throw HTTPProblem(.notFound, detail: "there is no such order") }
        return Order(
            id: try row.string("id"),
            client: try row.string("client"),
            sku: try row.string("sku"),
            quantity: try row.int64("quantity"),
            coupon: row["coupon"].string
        )
    }

    /// Decodes a JSON body; a malformed one is a 400 problem.
    func decode<T: Decodable & Sendable>(_ type: T.Type, _ request: Request, _ context: Context) async throws -> T {
        do {
            return try await request.decode(as: T.self, context: context)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            throw HTTPProblem(.bodyTooLarge, detail: "the body is too large")
        } catch {
            throw HTTPProblem(.badRequest, detail: "the body is not the JSON this route expects")
        }
    }
}

/// The shop's own problem codes.
enum ShopProblems {
    static let outOfStock = HTTPProblem.Code("out_of_stock")
    static let couponRedeemed = HTTPProblem.Code("coupon_redeemed")
}

/// What the shop accepts as names.
package enum ShopNames {
    /// A SKU: 1 to 64 bytes of A-Z a-z 0-9 _ -.
    package static func isSKU(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count)
            && text.utf8.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isCoupon(_ text: String) -> Bool {
        (1...32).contains(text.utf8.count) && text.utf8.allSatisfy { (0x41...0x5A).contains($0) || (0x30...0x39).contains($0) }
    }

    /// An event id from another service: 1 to 128 characters of A-Z a-z 0-9 . _ : -.
    static func isEventID(_ text: String) -> Bool {
        (1...128).contains(text.utf8.count)
            && text.utf8.allSatisfy {
                isAlphanumeric($0) || [UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "-")].contains($0)
            }
    }

    /// An event type: 1 to 64 letters.
    static func isEventType(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
    }
}
