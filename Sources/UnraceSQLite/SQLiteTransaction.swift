import Foundation
public import GRDB
import Synchronization
import Unrace
import UnraceCore
public import UnraceSQL

/// Business writes inside a ``SQLiteStore`` step, on the store's writer connection.
///
/// The transaction saves trips to GRDB's writer queue: `BEGIN IMMEDIATE` travels with the first
/// statement, statements given to ``executeBeforeCommit(_:_:)`` travel with `COMMIT`, and the
/// statements in between run on the writer at once (inside its own write transaction no statement
/// waits for a lock).
public final class SQLiteTransaction: SQLTransaction {
    enum Access: Sendable { case read, write }

    private struct State {
        /// Whether `BEGIN IMMEDIATE` succeeded: set on the writer, right after it ran, so a
        /// failed `BEGIN` (the file busy past the timeout) leaves it unset and the next statement
        /// begins again instead of running outside any transaction.
        var begun = false
        /// The step clock's reading as `BEGIN IMMEDIATE` succeeded: the step's time.
        var beganAt: Timestamp?
        /// Whether a write was ever sent: a first statement the body did not await may still be
        /// on its way (waiting in `BEGIN`), so the commit takes the writer after it.
        var touched = false
        var ended = false
        var beforeCommit: [(String, StatementArguments)] = []
        /// How many statements were queued for the commit when each open savepoint was taken.
        var savepoints: [String: Int] = [:]
    }

    let pool: DatabasePool
    /// The file of the store that handed it out.
    let file: FileIdentity
    let access: Access
    /// The step's clock, read as `BEGIN IMMEDIATE` succeeds (`nil`: a transaction of no step).
    let clock: (any WallClock)?
    private let state = Mutex(State())

    init(pool: DatabasePool, file: FileIdentity, access: Access, clock: (any WallClock)? = nil) {
        self.pool = pool
        self.file = file
        self.access = access
        self.clock = clock
    }

    /// The step clock's reading when the transaction began (it holds the file's write lock from
    /// then on), once it has.
    var beganAt: Timestamp? { state.withLock { $0.beganAt } }

    /// Runs a statement that returns no rows, in this transaction.
    public func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        let arguments = try StatementArguments(checked: arguments)
        try await run { db in try Self.execute(db, sql, arguments) }
    }

    /// Queues a statement to run in the same writer access as `COMMIT`; an error it raises fails
    /// the commit and rolls the transaction back.
    public func executeBeforeCommit(_ sql: String, _ arguments: [SQLValue]) async throws {
        guard access == .write else { return try await execute(sql, arguments) }
        let arguments = try StatementArguments(checked: arguments)
        try state.withLock { state in
            guard !state.ended else { throw UnraceError.stepEnded }
            state.beforeCommit.append((sql, arguments))
        }
    }

    /// `SAVEPOINT name`, on the writer at once, remembering how many statements wait for the commit.
    public func savepoint(_ name: String) async throws {
        guard access == .write else { throw UnraceError(.invalidArgument, "a read-only step has no savepoints") }
        let name = try checkedSavepointName(name)
        try await execute("SAVEPOINT \(name)", [])
        try state.withLock { state in
            guard !state.ended else { throw UnraceError.stepEnded }
            state.savepoints[name] = state.beforeCommit.count
        }
    }

    /// `ROLLBACK TO SAVEPOINT name`, and the statements queued for the commit since are dropped.
    public func rollback(toSavepoint name: String) async throws {
        guard access == .write else { throw UnraceError(.invalidArgument, "a read-only step has no savepoints") }
        let name = try checkedSavepointName(name)
        try await execute("ROLLBACK TO SAVEPOINT \(name)", [])
        try state.withLock { state in
            guard !state.ended else { throw UnraceError.stepEnded }
            guard let queued = state.savepoints[name] else { throw UnraceError(.invalidArgument, "no savepoint \(name)") }
            state.beforeCommit.removeLast(max(0, state.beforeCommit.count - queued))
        }
    }

    /// Runs a statement in this transaction and returns its rows.
    public func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        let arguments = try StatementArguments(checked: arguments)
        return try await run { db in
            try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map(SQLRow.init)
        }
    }

    /// Runs `work` with GRDB's `Database` in this transaction — GRDB records and queries
    /// (`try order.insert(db)`, `try Order.fetchOne(db, key: id)`) commit with the step, or not
    /// at all:
    ///
    /// ```swift
    /// try await operations.perform(key: "order:\(id)") { tx in
    ///     try await tx.withDatabase { db in try order.insert(db) }
    ///     return id
    /// }
    /// ```
    ///
    /// Do not begin, commit or roll back in `work`: the step does. In a read-only step `db` is a
    /// reader's. Inside a write step `work` runs synchronously on the calling task's thread, which
    /// holds the writer (no statement in it waits for a lock): keep it to database work — no
    /// sleeping, no waiting on other threads.
    /// - Throws: ``UnraceCore/UnraceError`` for SQLite errors (a broken constraint is
    ///   `constraint_violation`); what `work` throws.
    public func withDatabase<T: Sendable>(_ work: @escaping @Sendable (GRDB.Database) throws -> T) async throws -> T {
        try await run(work)
    }

    /// Sends `BEGIN IMMEDIATE` unless the write transaction began already (waiting, as it does,
    /// while another connection holds the file's write lock). A read-only step has nothing to begin.
    func begin() async throws {
        // Begun already (the usual case: the step's first statement began it): nothing to send.
        guard access == .write, !state.withLock({ $0.begun }) else { return }
        try await run { _ in }
    }

    /// Runs the queued statements and commits, in one writer access. Nothing to do if the
    /// transaction never ran a statement.
    func commit() async throws {
        let (touched, queued) = state.withLock { state in
            defer {
                state.beforeCommit = []
                state.ended = true
            }
            return (state.touched, state.beforeCommit)  // begun only ever after touched
        }
        guard touched || !queued.isEmpty else { return }
        try await Self.mapErrors {
            try await pool.writeWithoutTransaction { db in
                // Whether it began is read again here: a statement the body started and did not
                // await may have begun it since. A write that never began (its BEGIN found the
                // file busy, and the body went on) leaves nothing to commit when nothing is queued.
                if queued.isEmpty, !self.state.withLock({ $0.begun }) { return }
                try self.beginOrCheck(db)
                for (sql, arguments) in queued { try Self.execute(db, sql, arguments) }
                try db.cachedStatement(sql: "COMMIT").execute()
            }
        }
    }

    /// On the writer, before a statement of this transaction: `BEGIN IMMEDIATE` if it has not
    /// begun, else a check that SQLite has not ended it. A statement whose conflict resolution is
    /// `ROLLBACK` (`INSERT OR ROLLBACK`, a column's `ON CONFLICT ROLLBACK`, a trigger's
    /// `RAISE(ROLLBACK, …)`) rolls the whole transaction back; what the body sends after it would
    /// otherwise commit on its own, one statement at a time, without the step's writer lock.
    private func beginOrCheck(_ db: Database) throws {
        if state.withLock({ $0.begun }) {
            guard db.isInsideTransaction else {
                throw UnraceError(
                    .storeFailure,
                    "the step's transaction ended early: SQLite rolled it back (a statement's ROLLBACK conflict resolution, or RAISE(ROLLBACK)), or the body sent COMMIT or ROLLBACK itself; nothing more is sent"
                )
            }
        } else {
            try db.cachedStatement(sql: "BEGIN IMMEDIATE").execute()
            let now = clock?.now()
            state.withLock {
                $0.begun = true
                $0.beganAt = now
            }
        }
    }

    // A single statement is prepared once per connection and reused (GRDB's statement cache);
    // a script of several statements is run as it is.
    private static func execute(_ db: Database, _ sql: String, _ arguments: StatementArguments) throws {
        if sql.utf8.contains(UInt8(ascii: ";")) {
            try db.execute(sql: sql, arguments: arguments)
        } else {
            try db.cachedStatement(sql: sql).execute(arguments: arguments)
        }
    }

    /// The step is over: a handle that escaped its body sends nothing more (on the writer, its
    /// statement would run in whatever transaction another step has open there).
    func end() {
        state.withLock { $0.ended = true }
    }

    /// Throws `step_ended` once the step is over.
    private func checkOpen() throws {
        if state.withLock({ $0.ended }) { throw UnraceError.stepEnded }
    }

    private func run<T: Sendable>(_ work: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await Self.mapErrors {
            switch access {
            case .read:
                try checkOpen()
                return try await pool.read(work)
            case .write:
                let begun = try state.withLock { state in
                    guard !state.ended else { throw UnraceError.stepEnded }
                    state.touched = true
                    return state.begun
                }
                guard !begun else {
                    // Inside our own write transaction no statement waits for a lock (the file's
                    // write lock is ours, and WAL readers never block a writer), so it runs on the
                    // writer at once, without the hop to GRDB's queue and back. Only BEGIN
                    // IMMEDIATE, which may wait for another process, and COMMIT, which waits for
                    // the disk, suspend.
                    try Task.checkCancellation()
                    // Checked again on the writer, whose accesses GRDB runs one at a time: a
                    // statement a body started and did not await runs before the step's COMMIT
                    // or ROLLBACK (the step ends before their access), or not at all.
                    return try Self.runNow(pool) { db in
                        try checkOpen()
                        try beginOrCheck(db)
                        return try work(db)
                    }
                }
                // The first statement, or one sent while the first is on its way: the writer runs
                // them one at a time, and whichever comes first begins.
                return try await pool.writeWithoutTransaction { db in
                    try self.checkOpen()
                    try self.beginOrCheck(db)
                    return try work(db)
                }
            }
        }
    }

    /// Runs `work` on the writer synchronously (a non-async context, so GRDB's blocking access).
    private static func runNow<T>(_ pool: DatabasePool, _ work: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction(work)
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
                // A cancelled caller's wait for the lock was given up (the store's busy handler):
                // the cancellation is the answer, not an unavailable database.
                if Task.isCancelled { throw CancellationError() }
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

extension StatementArguments {
    /// Positional arguments from ``SQLValue``s. GRDB's initializer over a sequence of concrete
    /// values maps them through a key path in an unspecialised generic context, which showed in
    /// profiles of the `perform` fast path; the existential one calls a witness per value.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidArgument`` for text that holds a NUL, which
    ///   GRDB would bind only up to it.
    init(checked values: [SQLValue]) throws {
        try SQLValue.refuseNUL(in: values)
        self.init(values.map { $0.databaseValue as (any DatabaseValueConvertible)? })
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
