import Hummingbird
import Unrace
import UnraceHTTP
import UnraceHummingbird

/// A catalog entry: a versioned record, served with its version as `ETag` (the version moves
/// with every write of the entry and every order that takes its stock).
struct Product: Codable, Sendable {
    var name: String
    var priceCents: Int64
}

/// `GET /products/{sku}` body.
struct ProductResponse: ResponseEncodable {
    var sku: String
    var name: String
    var priceCents: Int64
    var available: Int64
    var version: Int64
}

extension Shop {
    /// `GET /products/{sku}`: the catalog entry and stock, with `ETag`; 304 (no body) when
    /// `If-None-Match` names the current version.
    func product(_ request: Request, _ context: Context) async throws -> Response {
        let sku = try skuParameter(context)
        let current = try await products.read(sku, as: Product.self)
        if try Preconditions().read(request, currentVersion: current?.version) == .notModified, let current {
            return Response(status: .notModified, headers: [.eTag: EntityTag(version: current.version).description])
        }
        guard let current else {
            throw HTTPProblem(.notFound, detail: "there is no product with this sku")
        }
        return try await productResponse(sku, current.value, version: current.version, status: .ok, request, context)
    }

    /// `PUT /products/{sku}`: creates (optionally `If-None-Match: *`) or replaces the entry;
    /// replacing needs `If-Match`: the current `ETag` (428 without it, 412 on a mismatch or
    /// when another write got there first), or `*`, which only needs the product to exist and
    /// replaces whatever version it has.
    func putProduct(_ request: Request, _ context: Context) async throws -> Response {
        let sku = try skuParameter(context)
        let input = try await decode(Product.self, request, context)
        guard (1...200).contains(input.name.utf8.count),
            !input.name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw HTTPProblem(.badRequest, detail: "name must be 1 to 200 bytes without control characters")
        }
        guard (0...100_000_000).contains(input.priceCents) else {
            throw HTTPProblem(.badRequest, detail: "priceCents must be between 0 and 100000000")
        }
        let current = try await products.read(sku, as: Product.self)
        do {
            switch try Preconditions().write(request, currentVersion: current?.version) {
            case .replace(let expected):
                let version = try await products.write(sku, input, expectedVersion: expected)
                return try await productResponse(sku, input, version: version, status: .ok, request, context)
            case .replaceExisting:
                let version = try await products.replace(sku, input)
                return try await productResponse(sku, input, version: version, status: .ok, request, context)
            case .create:
                if try await products.create(sku, input) != nil {  // `create` answers the version it found
                    throw HTTPProblem(.preconditionFailed, detail: "the product was created by another request first")
                }
                return try await productResponse(sku, input, version: 1, status: .created, request, context)
            }
        } catch let error as UnraceError where error.code == .versionConflict {
            throw HTTPProblem(.preconditionFailed, detail: "the product changed after If-Match was checked")
        } catch let error as UnraceError where error.code == .notFound {
            throw HTTPProblem(.preconditionFailed, detail: "the product was deleted after If-Match was checked")
        }
    }

    private func productResponse(
        _ sku: String,
        _ product: Product,
        version: Int64,
        status: HTTPResponse.Status,
        _ request: Request,
        _ context: Context
    ) async throws -> Response {
        // Read after the version, in a step of its own: an order between the two reads pairs the
        // older tag with the newer stock, so a client's tag is at worst older than its body (its
        // next conditional GET gets 200), never newer (which would make it 304 on stale stock).
        let available = try await store.withTransaction { tx in
            try await tx.query("SELECT available FROM shop_stock WHERE sku = ?", [.text(sku)]).first?.int64("available") ?? 0
        }
        let body = ProductResponse(sku: sku, name: product.name, priceCents: product.priceCents, available: available, version: version)
        var response = try body.response(from: request, context: context)
        response.status = status
        response.headers[.eTag] = EntityTag(version: version).description
        return response
    }

    /// A product's representation shows its stock (`available`), so its version — its `ETag`, a
    /// strong validator — moves when an order takes stock: a client holding the old tag gets the
    /// new stock (200, not 304), and its `If-Match` write 412. In the order's transaction, after
    /// the stock row (the product's row is locked only for the rest of the commit); a sku with
    /// stock but no catalog entry has no version to move.
    func bumpProductVersion(_ sku: String, in tx: S.Transaction) async throws {
        let rows = try await store.rows(joining: tx, clock: configuration.clock)
        guard var product = try await rows.record(collection: products.collection, id: sku, lock: true) else { return }
        product.version = product.version == .max ? .max : product.version + 1
        product.updatedAt = try await rows.now()
        try await rows.saveRecord(product, isNew: false)
    }

    private func skuParameter(_ context: Context) throws -> String {
        let sku = try context.parameters.require("sku")
        guard ShopNames.isSKU(sku) else { throw HTTPProblem(.badRequest, detail: "sku must be 1 to 64 characters of A-Z a-z 0-9 _ -") }
        return sku
    }
}
