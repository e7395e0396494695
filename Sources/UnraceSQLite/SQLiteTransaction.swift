public import Unrace
import UnraceCore
import GRDB
import Foundation

/// Business writes inside a ``SQLiteStore`` step, on the store's writer connection.
public struct SQLiteTransaction: SQLTransaction {
    enum Access: Sendable { case read, write }

    let pool: DatabasePool
    let access: Access

    /// Runs a statement that returns no rows, in this transaction.
    public func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        let arguments = StatementArguments(arguments.map(\.databaseValue))
        // A single statement is prepared once per connection and reused (GRDB's statement
        // cache); a script of several statements is run as it is.
        if sql.utf8.contains(UInt8(ascii: ";")) {
            try await run { db in try db.execute(sql: sql, arguments: arguments) }
        } else {
            try await run { db in try db.cachedStatement(sql: sql).execute(arguments: arguments) }
        }
    }

    /// Runs a statement in this transaction and returns its rows.
    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let arguments = StatementArguments(arguments.map(\.databaseValue))
        return try await run { db in
            try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { row in
                SQLRow(row)
            }
        }
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await Self.mapErrors {
            switch access {
            case .write: try await pool.writeWithoutTransaction(work)
            case .read: try await pool.read(work)
            }
        }
    }

    /// Translates GRDB's errors into ``UnraceError``s with stable codes.
    static func mapErrors<T>(_ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as DatabaseError {
            switch error.resultCode {
            case .SQLITE_CONSTRAINT:
                throw UnraceError(.constraintViolation, "a statement broke a database constraint", detail: error.message, underlying: error)
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                throw UnraceError(.storeUnavailable, "the SQLite database stayed locked longer than busyTimeout", underlying: error)
            default:
                throw UnraceError(.storeFailure, "SQLite reported an error", detail: error.message, underlying: error)
            }
        }
    }
}

extension SQLRow {
    init(_ row: Row) {
        self.init(columns: Array(row.columnNames), values: row.databaseValues.map(SQLValue.init))
    }
}

extension SQLValue {
    var databaseValue: DatabaseValue {
        switch self {
        case .null: .null
        case .integer(let value): value.databaseValue
        case .real(let value): value.databaseValue
        case .text(let value): value.databaseValue
        case .blob(let value): Data(value).databaseValue
        case .bool(let value): value.databaseValue
        }
    }

    init(_ value: DatabaseValue) {
        switch value.storage {
        case .null: self = .null
        case .int64(let value): self = .integer(value)
        case .double(let value): self = .real(value)
        case .string(let value): self = .text(value)
        case .blob(let value): self = .blob(Array(value))
        }
    }
}
