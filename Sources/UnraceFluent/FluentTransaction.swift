public import FluentKit
import PostgresNIO
import SQLiteNIO
import Unrace
import UnracePostgres
public import UnraceSQL

/// A step's transaction on a Fluent database: the transaction-scoped Fluent ``fluent`` database
/// for your models, and Unrace's SQL (and yours) on the same connection.
///
/// ```swift
/// try await operations.perform(key: "order:\(id)") { tx in
///     try await Order(sku: "widget").create(on: tx.fluent)   // commits with the claim, or not at all
///     return id
/// }
/// ```
///
/// Use ``fluent`` only inside the step's body: it is bound to the step's connection and
/// transaction, which end when the body returns (it then refuses to send, with `step_ended`). On
/// PostgreSQL its statements pass the step's guard, so the step timeout and a cancellation bound
/// them. It is an `SQLDatabase`, but not a `PostgresDatabase` or `SQLiteDatabase`. Await each
/// statement before starting the next. The step is the transaction: a Fluent transaction started
/// on it (`fluent.transaction { … }`) runs its closure in the step's transaction, so it commits,
/// or not, with the step.
public struct FluentTransaction: SQLTransaction {
    /// The Fluent database of this transaction: queries and model writes through it run on the
    /// step's connection, inside its transaction.
    public let fluent: any Database
    let sql: Driver
    /// Where its rows land: the location of the store that handed it out.
    let owner: String

    /// The SQL of each driver.
    enum Driver: Sendable {
        case postgres(PostgresTransaction)
        case sqlite(SQLiteConnectionTransaction)
    }

    /// Runs a statement that returns no rows (`?` placeholders), in this transaction.
    public func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        switch self.sql {
        case .postgres(let tx): try await tx.execute(sql, arguments)
        case .sqlite(let tx): try await tx.execute(sql, arguments)
        }
    }

    /// Runs a statement (`?` placeholders) in this transaction and returns its rows.
    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        switch self.sql {
        case .postgres(let tx): try await tx.query(sql, arguments)
        case .sqlite(let tx): try await tx.query(sql, arguments)
        }
    }
}

/// Unrace's SQL on one SQLiteNIO connection (Fluent's SQLite driver).
struct SQLiteConnectionTransaction: SQLTransaction {
    let connection: SQLiteConnection
    /// Open while the step runs; its statements, and its Fluent database's, are refused after.
    let gate = StepGate()

    func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        _ = try await query(sql, arguments)
    }

    func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        try SQLValue.refuseNUL(in: arguments)
        try gate.check()
        guard !connection.isClosed else { throw UnraceError(.storeUnavailable, "the SQLite connection was closed") }
        let rows: [SQLiteRow]
        do {
            rows = try await connection.query(sql, arguments.map(Self.data))
        } catch let error as SQLiteError {
            // A cancelled caller that waited out a busy lock gets its cancellation, as on SQLiteStore.
            if Task.isCancelled, [.busy, .locked, .busyTimeout].contains(error.reason) { throw CancellationError() }
            throw Self.translate(error)
        }
        return rows.map { row in
            SQLRow(columns: row.columns.map(\.name), values: row.columns.map { Self.value($0.data) })
        }
    }

    static func data(_ value: SQLValue) -> SQLiteData {
        switch value {
        case .null: .null
        case .integer(let value): .integer(SQLiteInt64(value))
        case .real(let value): .float(value)
        case .text(let value): .text(value)
        case .blob(let value): .blob(ByteBuffer(bytes: value))
        case .bool(let value): .integer(value ? 1 : 0)
        }
    }

    static func value(_ data: SQLiteData) -> SQLValue {
        switch data {
        case .integer(let value): .integer(Int64(value))
        case .float(let value): .real(value)
        case .text(let value): .text(value)
        case .blob(let buffer): .blob(Array(buffer.readableBytesView))
        case .null: .null
        }
    }

    /// SQLite's errors as Unrace's, as `SQLiteStore` maps them by primary result code (SQLiteNIO
    /// reports extended codes): a broken constraint of any kind (a trigger's `RAISE(ABORT, …)`, a
    /// STRICT table's type), a busy or locked database (retryable), or a failure.
    static func translate(_ error: SQLiteError) -> UnraceError {
        switch error.reason {
        case .constraint, .constraintUniqueFailed, .constraintPrimaryKeyFailed, .constraintCheckFailed, .constraintNotNullFailed,
            .constraintForeignKeyFailed, .constraintCommitHookFailed, .constraintUserFunctionFailed, .constraintTriggerFailed,
            .constraintVirtualTableFailed, .constraintUniqueRowIDFailed, .constraintUpdateTriggerDeletedRow,
            .constraintStrictDataTypeFailed:
            return UnraceError(.constraintViolation, "a statement broke a database constraint", detail: error.message, underlying: error)
        case .busy, .locked, .busyTimeout, .busyInRecovery, .busyInSnapshot, .lockedBySharedCache, .lockedVirtualTable:
            return UnraceError(.storeUnavailable, "the SQLite database is busy", detail: error.message, underlying: error)
        default:
            return UnraceError(.storeFailure, "SQLite reported an error", detail: error.message, underlying: error)
        }
    }
}
