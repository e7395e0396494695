import FluentKit
import Logging
import NIOCore
import SQLKit
import UnracePostgres

/// The Fluent database a PostgreSQL step's body writes through: the connection-bound database
/// Fluent lent the step, with every statement sent through the step's ``ConnectionGuard``, as
/// Unrace's own are.
///
/// So a Fluent statement is bounded like any other of the step's: in flight at the step's
/// deadline (or its caller's cancellation), it is cut off by closing the connection; after a stop
/// it is refused; on a connection that closed (the server went, a failover), it fails at once.
/// Sent straight to postgres-nio, a statement on a closed connection is never answered (its
/// write fails and nothing completes the query), and the step, the request and a graceful
/// shutdown would wait on it forever.
struct GuardedFluentDatabase: Database, SQLDatabase {
    let base: any Database & SQLDatabase
    let stepGuard: ConnectionGuard

    /// - Parameter base: the connection-bound database of FluentPostgresDriver, which is also an
    ///   `SQLDatabase`.
    init(base: any Database, stepGuard: ConnectionGuard) {
        self.base = base as! any Database & SQLDatabase
        self.stepGuard = stepGuard
    }

    var context: DatabaseContext { base.context }
    /// The step is the transaction: a Fluent transaction opened on this database runs in it.
    var inTransaction: Bool { true }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLKit.SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void) -> EventLoopFuture<Void> {
        guarded { base.execute(query: query, onOutput: onOutput) }
    }

    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> {
        guarded { base.execute(schema: schema) }
    }

    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> {
        guarded { base.execute(enum: `enum`) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLKit.SQLRow) -> Void) -> EventLoopFuture<Void> {
        guarded { base.execute(sql: query, onRow) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLKit.SQLRow) -> Void) async throws {
        let base = base
        try await stepGuard.send { try await base.execute(sql: query, onRow).get() }
    }

    func transaction<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        closure(self)
    }

    func withConnection<T>(_ closure: @escaping @Sendable (any Database) -> EventLoopFuture<T>) -> EventLoopFuture<T> {
        closure(self)
    }

    func withSession<R>(_ closure: @escaping @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await closure(self)
    }

    /// Sends the statement `send` starts through the step's guard.
    private func guarded(_ send: @escaping @Sendable () -> EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        let promise = base.eventLoop.makePromise(of: Void.self)
        let stepGuard = stepGuard
        promise.completeWithTask { try await stepGuard.send { try await send().get() } }
        return promise.futureResult
    }
}

extension FluentStore {
    /// The SQL dialect a Fluent database reports (SQLKit's name, such as `postgresql`), if it is
    /// an SQL database.
    static func sqlDialectName(of database: any Database) -> String? {
        (database as? any SQLDatabase)?.dialect.name
    }
}
