import FluentKit
import Logging
import NIOCore
import SQLKit
import Synchronization
import UnraceCore
import UnracePostgres

/// The Fluent database a step's body writes through: the connection-bound database Fluent lent
/// the step, with every statement passing the step's gate.
///
/// On PostgreSQL the gate is the step's ``ConnectionGuard``, as for Unrace's own statements: a
/// Fluent statement in flight at the step's deadline (or its caller's cancellation) is cut off by
/// closing the connection; after a stop it is refused; on a connection that closed (the server
/// went, a failover) it fails at once. Sent straight to postgres-nio, a statement on a closed
/// connection is never answered (its write fails and nothing completes the query), and the step,
/// the request and a graceful shutdown would wait on it forever.
///
/// On both drivers a statement sent after the step ended (the database escaped the body) is
/// refused with `step_ended`: the connection may be another step's by then, and on SQLite the
/// statement would run in that step's transaction.
struct GuardedFluentDatabase: Database, SQLDatabase {
    /// What each statement passes.
    enum Gate: Sendable {
        case postgres(ConnectionGuard)
        case sqlite(StepGate)
    }

    let base: any Database & SQLDatabase
    let gate: Gate

    /// - Parameter base: the connection-bound database of FluentPostgresDriver or
    ///   FluentSQLiteDriver, which is also an `SQLDatabase`.
    init(base: any Database, gate: Gate) {
        self.base = base as! any Database & SQLDatabase
        self.gate = gate
    }

    var context: DatabaseContext { base.context }
    /// The step is the transaction: a Fluent transaction opened on this database runs in it.
    var inTransaction: Bool { true }
    var version: (any SQLDatabaseReportedVersion)? { base.version }
    var dialect: any SQLKit.SQLDialect { base.dialect }
    var queryLogLevel: Logger.Level? { base.queryLogLevel }

    func execute(query: DatabaseQuery, onOutput: @escaping @Sendable (any DatabaseOutput) -> Void) -> EventLoopFuture<Void> {
        gated { base.execute(query: query, onOutput: onOutput) }
    }

    func execute(schema: DatabaseSchema) -> EventLoopFuture<Void> {
        gated { base.execute(schema: schema) }
    }

    func execute(enum: DatabaseEnum) -> EventLoopFuture<Void> {
        gated { base.execute(enum: `enum`) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLKit.SQLRow) -> Void) -> EventLoopFuture<Void> {
        gated { base.execute(sql: query, onRow) }
    }

    func execute(sql query: any SQLExpression, _ onRow: @escaping @Sendable (any SQLKit.SQLRow) -> Void) async throws {
        let base = base
        switch gate {
        case .postgres(let stepGuard):
            try await stepGuard.send { try await base.execute(sql: query, onRow).get() }
        case .sqlite(let stepGate):
            try stepGate.check()
            try await base.execute(sql: query, onRow)
        }
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

    /// Sends the statement `send` starts through the gate.
    private func gated(_ send: @escaping @Sendable () -> EventLoopFuture<Void>) -> EventLoopFuture<Void> {
        switch gate {
        case .postgres(let stepGuard):
            let promise = base.eventLoop.makePromise(of: Void.self)
            promise.completeWithTask { try await stepGuard.send { try await send().get() } }
            return promise.futureResult
        case .sqlite(let stepGate):
            do { try stepGate.check() } catch { return base.eventLoop.makeFailedFuture(error) }
            return send()
        }
    }
}

/// Whether a Fluent SQLite step is still running: its handles send nothing once it has ended.
final class StepGate: Sendable {
    private let ended = Mutex(false)

    /// The step is over.
    func end() { ended.withLock { $0 = true } }

    /// Throws `step_ended` once the step is over.
    func check() throws {
        if ended.withLock({ $0 }) { throw UnraceError.stepEnded }
    }
}

extension FluentStore {
    /// The SQL dialect a Fluent database reports (SQLKit's name, such as `postgresql`), if it is
    /// an SQL database.
    static func sqlDialectName(of database: any Database) -> String? {
        (database as? any SQLDatabase)?.dialect.name
    }
}
