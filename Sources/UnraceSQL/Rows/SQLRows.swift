import Synchronization
public import Unrace
public import UnraceCore

/// `StoreRows` over any ``SQLTransaction``: the rows of SQLite and PostgreSQL, in one SQL
/// written for both dialects. It moves rows; Unrace's guards decide.
///
/// The dialects differ only where the engines do:
/// - **Locks.** SQLite runs one write transaction at a time, so a read is a lock. PostgreSQL
///   reads rows a decision depends on `FOR UPDATE`; where the row may be absent and a concurrent
///   step could create it, it inserts first (a claim's reservation, an inbox stream, a lifecycle
///   state) so the concurrent step waits on it.
/// - **Time.** On PostgreSQL, a step whose clock is real time decides on the database's clock,
///   read in the step's first locking statement (or, if the step asks before any, on its own).
/// - **Ordering.** Text keys sort byte-wise (`COLLATE "C"` on PostgreSQL, SQLite's default), so
///   every store picks the same rows for a bounded batch.
public struct SQLRows<T: SQLTransaction>: Sendable {
    /// The transaction the rows are read and written in.
    public let tx: T
    /// The SQL flavour.
    public let dialect: SQLDialect
    let clock: SQLStepClock
    let bulk: SQLBulkStatements?
    /// Reads the step's time when it is first asked for (SQLite: once the step holds the file's
    /// write lock, after `BEGIN IMMEDIATE`, which may wait for another connection).
    let readTime: (@Sendable () async throws -> Timestamp)?
    /// The time the store gave the step, if it gave one.
    let givenTime: Timestamp?

    /// Rows in `tx`. `time` is the step's time when the store knows it already (a clock that is
    /// not real time); `nil` makes PostgreSQL read its own clock in the step, or `readTime` read
    /// it when first asked for.
    package init(
        _ tx: T,
        dialect: SQLDialect,
        time: Timestamp?,
        bulk: SQLBulkStatements? = nil,
        readTime: (@Sendable () async throws -> Timestamp)? = nil
    ) {
        self.tx = tx
        self.dialect = dialect
        self.clock = SQLStepClock(time)
        self.givenTime = time
        self.bulk = bulk
        self.readTime = readTime
    }

    var byteOrder: String { dialect.byteOrderCollation }

    /// On the database's clock, the clock read again (the step's time moves on to it); a given
    /// time, or one read by ``readTime``, stays.
    public func timeAfterWait() async throws -> Timestamp {
        guard givenTime == nil, readTime == nil, dialect.clockExpression != nil else { return try await now() }
        return clock.moveOn(to: try await databaseClock())
    }

    public func now() async throws -> Timestamp {
        if let time = clock.time { return try time.checkedReading() }
        if let readTime { return try clock.set(try await readTime().milliseconds).checkedReading() }
        return clock.set(try await databaseClock())
    }

    /// The database's clock, read in a statement of its own.
    private func databaseClock() async throws -> Int64 {
        guard let now = dialect.clockExpression else {
            throw UnraceError(.storeFailure, "a step on a database without a clock of its own was given no time")
        }
        return try await tx.query("SELECT \(now) AS unrace_now", [])[0].int64("unrace_now")
    }

    /// Runs a read, locking what it returns when `lock` is set. On PostgreSQL, while the step's
    /// time is not known yet, the database's clock is read in the same statement.
    func select(_ sql: String, _ arguments: [SQLValue], lock: Bool) async throws -> [SQLRow] {
        let statement = lock ? sql + dialect.rowLockClause : sql
        guard let now = dialect.clockExpression, clock.time == nil else { return try await tx.query(statement, arguments) }
        let rows = try await tx.query(Self.withDatabaseNow(statement, clock: now), arguments)
        clock.set(try rows[0].int64("unrace_now"))
        return rows.filter { !$0["unrace_row"].isNull }.map { row in
            let kept = row.columns.indices.filter { row.columns[$0] != "unrace_now" && row.columns[$0] != "unrace_row" }
            return SQLRow(columns: kept.map { row.columns[$0] }, values: kept.map { row.values[$0] })
        }
    }

    /// A write nothing in the step reads back: SQLite sends it with `COMMIT`.
    func write(_ sql: String, _ arguments: [SQLValue]) async throws {
        try await tx.executeBeforeCommit(sql, arguments)
    }

    /// A statement that also returns the database's clock, in one row even when the statement
    /// returns none (then with `unrace_row` null). Works for reads `FOR UPDATE` and for
    /// `INSERT … RETURNING` alike.
    package static func withDatabaseNow(_ statement: String, clock: String = SQLText.databaseNowSQL) -> String {
        """
        WITH unrace_q AS (\(statement))
        SELECT \(clock) AS unrace_now, r.* FROM (SELECT 1) AS unrace_t
        LEFT JOIN (SELECT 1 AS unrace_row, * FROM unrace_q) AS r ON TRUE
        """
    }
}

/// Every guard's rows, each implemented in its own file (`SQLRows+Operations.swift`, …).
extension SQLRows: StoreRows {
    /// `SAVEPOINT` in the step's transaction (``SQLTransaction/savepoint(_:)``).
    public func savepoint() async throws -> StepSavepoint {
        try await tx.savepoint(Self.savepointName)
        return StepSavepoint(Self.savepointName)
    }

    /// `ROLLBACK TO SAVEPOINT` (``SQLTransaction/rollback(toSavepoint:)``).
    public func rollback(to savepoint: StepSavepoint) async throws {
        guard let name = savepoint.mark as? String else { throw UnraceError(.invalidArgument, "a savepoint of another store") }
        try await tx.rollback(toSavepoint: name)
    }

    static var savepointName: String { "unrace_step_mark" }
}

/// The time of one SQL step: known from the start, or read from the database once.
final class SQLStepClock: Sendable {
    private let value: Mutex<Timestamp?>

    init(_ time: Timestamp?) { value = Mutex(time) }

    var time: Timestamp? { value.withLock { $0 } }

    /// Keeps the first time read; returns the step's time.
    @discardableResult
    func set(_ milliseconds: Int64) -> Timestamp {
        value.withLock { current in
            if let current { return current }
            current = Timestamp(milliseconds: milliseconds)
            return current!
        }
    }

    /// Moves the step's time on to a later reading, before anything was decided on it (a claim
    /// that waited on a lock); an earlier reading leaves it. Returns the step's time.
    @discardableResult
    func moveOn(to milliseconds: Int64) -> Timestamp {
        value.withLock { current in
            let later = max(current ?? Timestamp(milliseconds: milliseconds), Timestamp(milliseconds: milliseconds))
            current = later
            return later
        }
    }
}

/// How a backend reads and inserts transfers in bulk when it can do better than the portable
/// statements (PostgreSQL binds arrays).
package struct SQLBulkStatements: Sendable {
    package var fetchTransfers: @Sendable ([String]) async throws -> [SQLRow]
    /// Writes the balances (of locked accounts that exist) and inserts the transfers, in one
    /// statement; either may be empty.
    package var saveBalancesAndInsertTransfers: @Sendable ([Account], [StoredTransfer]) async throws -> Void

    package init(
        fetchTransfers: @escaping @Sendable ([String]) async throws -> [SQLRow],
        saveBalancesAndInsertTransfers: @escaping @Sendable ([Account], [StoredTransfer]) async throws -> Void
    ) {
        self.fetchTransfers = fetchTransfers
        self.saveBalancesAndInsertTransfers = saveBalancesAndInsertTransfers
    }
}
