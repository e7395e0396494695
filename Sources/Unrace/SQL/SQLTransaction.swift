import UnraceCore

/// Business writes inside an Unrace transaction on a SQL store.
///
/// Placeholders are `?` on every backend (PostgreSQL's `$1` also works there, and a statement
/// that uses `$n` is sent unchanged). Statements run in the same transaction as the operation
/// record Unrace writes, so they commit together or not at all. Use `RETURNING` to learn what a conditional statement changed; it works on SQLite
/// (3.35 and later, checked at open) and PostgreSQL alike.
public protocol SQLTransaction: Sendable {
    /// Runs a statement that returns no rows.
    func execute(_ sql: String, _ arguments: [SQLValue]) async throws

    /// Runs a statement and returns its rows.
    func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow]

    /// Runs a statement no later than the commit. Stores where each statement is a round trip
    /// (SQLite's writer queue) send it together with `COMMIT`; an error it raises then fails the
    /// commit and rolls everything back. Use it for writes nothing in the transaction reads.
    /// The default runs it at once.
    func executeBeforeCommit(_ sql: String, _ arguments: [SQLValue]) async throws
}

extension SQLTransaction {
    /// Runs the statement at once.
    public func executeBeforeCommit(_ sql: String, _ arguments: [SQLValue]) async throws {
        try await execute(sql, arguments)
    }

    /// Runs a statement with no arguments.
    public func execute(_ sql: String) async throws { try await execute(sql, []) }

    /// Runs a query with no arguments.
    public func query(_ sql: String) async throws -> [SQLRow] { try await query(sql, []) }
}

/// A ``Store`` whose transactions run SQL: what SQLite and PostgreSQL stores share, so code
/// written against it (the demo, tests, your own handlers) runs on both. Its rows are
/// ``SQLRows``, the one SQL of both backends.
public protocol SQLStore: Store where Transaction: SQLTransaction {
    /// A short name of the backend, such as `sqlite` or `postgres`.
    var backendName: String { get }
    /// The SQL flavour the store speaks.
    var dialect: SQLDialect { get }
}

extension SQLStore {
    /// Runs `body` in a transaction that holds the store's schema lock — the lock Unrace's own
    /// migrations take (a PostgreSQL transaction-scoped advisory lock; SQLite's single writer) —
    /// so set-up that creates tables or seeds rows, run by several processes starting at once
    /// (replicas of a rolling deploy), runs one process at a time. PostgreSQL's
    /// `CREATE TABLE IF NOT EXISTS` is not safe against itself: two concurrent ones can fail on
    /// the system catalog's unique index.
    /// - Throws: store errors; what `body` throws (nothing of it is written then).
    public func withSchemaLock<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        try await withTransaction { tx in
            if dialect == .postgres { try await tx.execute("SELECT pg_advisory_xact_lock(\(SQLSchema.lockKey))") }
            return try await body(tx)
        }
    }

    /// ``SQLRows`` in the given transaction: on PostgreSQL a real-time clock is replaced by the
    /// database's, as in a step; SQLite reads `clock` now.
    public func rows(joining transaction: Transaction, clock: any WallClock) async throws -> any StoreRows {
        let time: Timestamp? = dialect == .postgres && clock.isRealTime ? nil : clock.now()
        return SQLRows(transaction, dialect: dialect, time: time)
    }
}

/// The SQL flavours whose differences Unrace's shared SQL knows.
public struct SQLDialect: Sendable, Hashable {
    let name: String

    /// SQLite: one writer at a time, so reads need no row locks.
    public static let sqlite = SQLDialect(name: "sqlite")
    /// PostgreSQL (and Postgres-compatible engines): concurrent writers, so rows a decision
    /// depends on are read `FOR UPDATE`.
    public static let postgres = SQLDialect(name: "postgres")

    /// Appended to reads that must lock the rows they return until the transaction ends.
    public var rowLockClause: String { self == .postgres ? "FOR UPDATE" : "" }
}
