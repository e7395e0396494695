public import Hummingbird
import Foundation
import Synchronization
import UnraceHTTP

/// A fake payment provider, reached over HTTP like a real one: `POST /charges` charges an amount
/// and is idempotent on its `Idempotency-Key` header, as Stripe's API is; `GET /charges` reports
/// how many charges it made. It keeps its charges in memory, so it must outlive the shops it
/// serves (run it as `unrace provider`).
public struct PaymentProvider: Sendable {
    private let ledger = ProviderLedger()

    /// A provider with no charges.
    public init() {}

    /// The provider's routes.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("charges") { request, context -> Response in
            let charge = try await request.decode(as: ChargeRequest.self, context: context)
            let key = request.headers[.idempotencyKey].flatMap { try? IdempotencyKey(parsing: $0).value }
            let (id, isNew) = ledger.charge(key: key, amount: charge.amountCents)
            var response = try ChargeResponse(id: id, amountCents: charge.amountCents).response(from: request, context: context)
            response.status = isNew ? .created : .ok
            return response
        }
        router.get("charges") { _, _ in ledger.summary() }
        return router
    }
}

/// `POST /charges` body.
struct ChargeRequest: Codable, Sendable {
    var amountCents: Int64
}

/// `POST /charges` answer.
struct ChargeResponse: ResponseCodable {
    var id: String
    var amountCents: Int64
}

/// `GET /charges` answer: what the provider charged, in total.
struct ChargeSummary: ResponseCodable {
    var charges: Int
    var amountCents: Int64
}

/// The provider's charges; a key seen before answers its first charge.
private final class ProviderLedger: Sendable {
    private let state = Mutex<(charges: [String], byKey: [String: String], total: Int64)>(([], [:], 0))

    func charge(key: String?, amount: Int64) -> (id: String, isNew: Bool) {
        state.withLock { state in
            if let key, let id = state.byKey[key] { return (id, false) }
            let id = "ch_\(state.charges.count + 1)"
            state.charges.append(id)
            state.total &+= amount
            if let key { state.byKey[key] = id }
            return (id, true)
        }
    }

    func summary() -> ChargeSummary {
        state.withLock { ChargeSummary(charges: $0.charges.count, amountCents: $0.total) }
    }
}
