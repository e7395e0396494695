public import Fluent
public import UnraceFluent
public import Vapor

extension Request {
    /// Unrace's view of this request: the idempotent request's transaction, and the Fluent
    /// database the route's writes must go through.
    public var unrace: UnraceRequest { UnraceRequest(request: self) }
}

/// Unrace's view of a Vapor request (`req.unrace`).
public struct UnraceRequest: Sendable {
    let request: Request

    private struct TransactionKey: StorageKey {
        typealias Value = TransactionBox
    }

    /// The transaction of the request's claim, while the route runs under ``IdempotencyMiddleware``;
    /// `nil` elsewhere. Its writes commit with the stored response, or not at all.
    public var transaction: (any Sendable)? {
        get { request.storage[TransactionKey.self]?.value }
        nonmutating set { request.storage[TransactionKey.self] = newValue.map(TransactionBox.init) }
    }

    /// The Fluent database the route writes through: under ``IdempotencyMiddleware`` on a
    /// ``UnraceFluent/FluentStore``, the claim's transaction-scoped database (a model created on it
    /// commits with the stored response, or not at all); elsewhere `req.db`.
    public var db: any Database {
        (transaction as? FluentTransaction)?.fluent ?? request.db
    }
}

/// The claim's transaction, as request storage keeps it.
struct TransactionBox: Sendable {
    let value: any Sendable
}
