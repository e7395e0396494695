import Foundation
import HTTPTypes
public import Hummingbird
import Synchronization
import UnraceCore
import UnraceHTTP
import UnraceHummingbird

/// The shop's external systems, reached over HTTP like real ones: a payment provider and a mail
/// API. Both are idempotent on an `Idempotency-Key` header, as Stripe's charges and Resend's
/// emails are: a request with a key seen before is answered with its first result and changes
/// nothing. A key seen before with another body is refused (422 `idempotency_key_reused`, nothing
/// changes), as Stripe refuses a key reused with other parameters. A request without a key is
/// always new — what a naive caller gets.
///
/// - `POST /charges` (`{"amountCents": N}`, N from 1 to ``amountCentsMaximum``, else 400): charges;
///   201 when new, 200 for a key seen before.
/// - `POST /emails` (`{"to": "…", "subject": "…"}`): delivers; 201 when new, 200 for a key seen before.
/// - `GET /charges`: how many charges, for how much.
/// - `GET /log`: every request they took, in their order: what was delivered (a new
///   charge or email) and what a key absorbed, with the `X-Operation` and `X-Worker` headers the
///   caller sent. It is the external truth a fault run's history is built from.
///
/// State lives in memory, so the process must outlive the shops and workers it serves (run it as
/// `unrace provider`).
public struct PaymentProvider: Sendable {
    private let ledger = ProviderLedger()

    /// Systems with no charges and no emails.
    public init() {}

    /// The largest charge: 10^12 cents, the shop's largest order (1,000 units at its highest unit
    /// price). `GET /charges`'s total stops at Int64's largest value.
    public static var amountCentsMaximum: Int64 { 1_000_000_000_000 }

    /// The systems' routes.
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.post("charges") { request, context -> Response in
            let charge = try await request.decode(as: ChargeRequest.self, context: context)
            guard (1...Self.amountCentsMaximum).contains(charge.amountCents) else {
                throw HTTPProblem(status: .badRequest, detail: "amountCents must be between 1 and \(Self.amountCentsMaximum)")
            }
            let (id, amount, isNew) = try ledger.record(.charge, request, amount: charge.amountCents, body: .json(charge))
            var response = try ChargeResponse(id: id, amountCents: amount).response(from: request, context: context)
            response.status = isNew ? .created : .ok
            return response
        }
        router.post("emails") { request, context -> Response in
            let email = try await request.decode(as: EmailRequest.self, context: context)
            let (id, _, isNew) = try ledger.record(.email, request, amount: 0, body: .json(email))
            var response = try EmailResponse(id: id).response(from: request, context: context)
            response.status = isNew ? .created : .ok
            return response
        }
        router.get("charges") { _, _ in ledger.summary() }
        router.get("log") { _, _ in ledger.log() }
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

/// `POST /emails` body.
struct EmailRequest: Codable, Sendable {
    var to: String
    var subject: String
}

/// `POST /emails` answer.
struct EmailResponse: ResponseCodable {
    var id: String
}

/// `GET /charges` answer: what the provider charged, in total.
struct ChargeSummary: ResponseCodable {
    var charges: Int
    var amountCents: Int64
}

/// One request the external systems took, as `GET /log` lists it.
public struct ExternalEvent: Codable, Sendable, Hashable {
    /// What was asked.
    public enum Kind: String, Codable, Sendable, Hashable {
        /// `POST /charges`.
        case charge
        /// `POST /emails`.
        case email
    }

    /// The systems' own order of requests, from 1.
    public var sequence: Int
    /// Charge or email.
    public var kind: Kind
    /// The charge's or email's id (the first one's, when a key absorbed the request).
    public var id: String
    /// Whether this request charged or delivered (`false`: its key answered an earlier one).
    public var delivered: Bool
    /// The amount charged, in cents (0 for an email).
    public var amountCents: Int64
    /// The caller's `X-Operation` header: which business operation this is.
    public var operation: String?
    /// The caller's `X-Worker` header.
    public var worker: String?
    /// Whether the request carried an idempotency key.
    public var keyed: Bool
}

/// `GET /log` answer.
struct ExternalLog: ResponseCodable {
    var events: [ExternalEvent]
}

/// The systems' charges and emails; a key seen before answers its first result.
private final class ProviderLedger: Sendable {
    private struct State {
        var charges = 0
        var emails = 0
        /// A key's first answer, and the fingerprint of the body it was given for.
        var byKey: [String: (id: String, amount: Int64, body: Fingerprint)] = [:]
        var total: Int64 = 0
        var events: [ExternalEvent] = []
    }

    private let state = Mutex(State())

    /// - Throws: ``HTTPProblem`` 422 `idempotency_key_reused` for a key seen before with another
    ///   body; nothing is recorded.
    func record(
        _ kind: ExternalEvent.Kind,
        _ request: Request,
        amount: Int64,
        body: Fingerprint
    ) throws -> (id: String, amount: Int64, isNew: Bool) {
        let key = request.headers[.idempotencyKey].flatMap { try? IdempotencyKey(parsing: $0).value }
        let operation = request.headers[HTTPField.Name("X-Operation")!]
        let worker = request.headers[HTTPField.Name("X-Worker")!]
        return try state.withLock { state in
            // Keys are per kind: a charge's key never answers an email.
            let scoped = key.map { "\(kind.rawValue):\($0)" }
            let existing = scoped.flatMap { state.byKey[$0] }
            if let existing, existing.body != body {
                throw HTTPProblem(.idempotencyKeyReused, detail: "this key was first used with another body")
            }
            let id: String
            if let existing {
                id = existing.id
            } else if kind == .charge {
                state.charges += 1
                state.total = state.total.addingReportingOverflow(amount).overflow ? .max : state.total + amount
                id = "ch_\(state.charges)"
            } else {
                state.emails += 1
                id = "em_\(state.emails)"
            }
            if let scoped, existing == nil { state.byKey[scoped] = (id, amount, body) }
            state.events.append(
                ExternalEvent(
                    sequence: state.events.count + 1,
                    kind: kind,
                    id: id,
                    delivered: existing == nil,
                    amountCents: existing == nil ? amount : 0,
                    operation: operation,
                    worker: worker,
                    keyed: key != nil
                )
            )
            return (id, existing?.amount ?? amount, existing == nil)
        }
    }

    func summary() -> ChargeSummary {
        state.withLock { ChargeSummary(charges: $0.charges, amountCents: $0.total) }
    }

    func log() -> ExternalLog {
        state.withLock { ExternalLog(events: $0.events) }
    }
}
