public import Fluent
import Unrace
import UnraceFluent
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
    /// commits with the stored response, or not at all); outside the middleware, `req.db`.
    ///
    /// Under a middleware on another store (`SQLiteStore`, `PostgresStore`) there is no Fluent
    /// database in the claim's transaction: every query on this one then fails with
    /// ``UnraceCore/UnraceError/Code/invalidConfiguration`` instead of writing outside the claim.
    public var db: any Database {
        guard let transaction else { return request.db }
        if let fluent = (transaction as? FluentTransaction)?.fluent { return fluent }
        // A context of its own: `request.db` traps when the app has no default Fluent database,
        // which an app on SQLiteStore or PostgresStore need not have.
        let context = DatabaseContext(configuration: NoConfiguration(), logger: request.logger, eventLoop: request.eventLoop)
        return NotInTheClaim(context: context, store: "\(type(of: transaction))")
    }
}

/// The configuration of ``NotInTheClaim``'s context: no model middleware, no driver (it sends
/// nothing anywhere).
private struct NoConfiguration: DatabaseConfiguration {
    var middleware: [any AnyModelMiddleware] = []

    func makeDriver(for databases: Databases) -> any DatabaseDriver {
        preconditionFailure("req.unrace.db outside a FluentStore's claim has no driver: it refuses every query")
    }
}

/// `req.unrace.db` under an idempotency middleware whose store is not a ``UnraceFluent/FluentStore``:
/// refuses every query, so no write lands outside the claim's transaction.
private struct NotInTheClaim: Database {
    let context: DatabaseContext
    let store: String

    var inTransaction: Bool { true }

    private func refuse<T>() -> EventLoopFuture<T> {
        eventLoop.makeFailedFuture(
            UnraceError(
                .invalidConfiguration,
                "req.unrace.db is the claim's Fluent database only under IdempotencyMiddleware on a FluentStore",
                detail: "the middleware's transaction is \(store): write through it (req.unrace.transaction)"
            )
        )
    }

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void) -> EventLoopFuture<Void> { refuse() }
    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> { refuse() }
    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> { refuse() }
    func transaction<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> { refuse() }
    func withConnection<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> { refuse() }
}

/// The claim's transaction, as request storage keeps it.
struct TransactionBox: Sendable {
    let value: any Sendable
}
