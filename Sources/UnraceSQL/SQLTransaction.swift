public import Unrace
import UnraceCore

/// Business writes inside an Unrace transaction on a SQL store.
///
/// Placeholders are `?` on every backend (PostgreSQL's `$1` also works there, and a statement
/// that uses `$n` is sent unchanged). Statements run in the same transaction as the operation
/// record Unrace writes, so they commit together or not at all. Use `RETURNING` to learn what a conditional statement changed; it works on SQLite
/// (3.35 and later, checked at open) and PostgreSQL alike.
public protocol SQLTransaction: Sendable {
    /// Runs a statement that returns no rows.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidArgument`` for a text argument that holds a
    ///   NUL, before anything is sent (``SQLValue/text(_:)``); store errors.
    func execute(_ sql: String, _ arguments: [SQLValue]) async throws

    /// Runs a statement and returns its rows.
    /// - Throws: as ``execute(_:_:)``.
    func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow]

    /// Runs a statement no later than the commit. Stores where each statement is a round trip
    /// (SQLite's writer queue) send it together with `COMMIT`; an error it raises then fails the
    /// commit and rolls everything back. Use it for writes nothing in the transaction reads.
    /// The default runs it at once.
    /// - Throws: as ``execute(_:_:)``; a text argument that holds a NUL is refused by this call,
    ///   never at the commit.
    func executeBeforeCommit(_ sql: String, _ arguments: [SQLValue]) async throws

    /// Marks the transaction's writes so far: `SAVEPOINT name`. The default sends it at once.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidArgument`` for a name that is not 1 to 63
    ///   letters, digits or underscores starting with a letter or underscore (names are compared
    ///   without regard to case, as SQL compares them); store errors.
    func savepoint(_ name: String) async throws

    /// Undoes the writes made after the savepoint `name` — also statements queued for the commit
    /// since — and keeps the transaction open: `ROLLBACK TO SAVEPOINT name`. The default sends it
    /// at once.
    /// - Throws: as ``savepoint(_:)``; store errors for a savepoint the transaction does not have.
    func rollback(toSavepoint name: String) async throws
}

/// A savepoint's name as SQL takes it unquoted, in lower case (SQL compares such names without
/// regard to case).
/// - Throws: ``UnraceCore/UnraceError/Code/invalidArgument`` for anything else: the name is
///   written into the statement, never bound.
package func checkedSavepointName(_ name: String) throws -> String {
    let bytes = Array(name.utf8)
    func isLetter(_ byte: UInt8) -> Bool { (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || byte == UInt8(ascii: "_") }
    guard (1...63).contains(bytes.count), isLetter(bytes[0]), bytes.allSatisfy({ isLetter($0) || (0x30...0x39).contains($0) }) else {
        throw UnraceError(
            .invalidArgument,
            "a savepoint's name is 1 to 63 letters, digits or underscores, starting with a letter or underscore"
        )
    }
    return name.lowercased()
}

extension SQLTransaction {
    /// Runs the statement at once.
    public func executeBeforeCommit(_ sql: String, _ arguments: [SQLValue]) async throws {
        try await execute(sql, arguments)
    }

    /// Sends `SAVEPOINT name`.
    public func savepoint(_ name: String) async throws {
        try await execute("SAVEPOINT \(try checkedSavepointName(name))", [])
    }

    /// Sends `ROLLBACK TO SAVEPOINT name`.
    public func rollback(toSavepoint name: String) async throws {
        try await execute("ROLLBACK TO SAVEPOINT \(try checkedSavepointName(name))", [])
    }

    /// Runs a statement with no arguments.
    public func execute(_ sql: String) async throws { try await execute(sql, []) }

    /// Runs a query with no arguments.
    public func query(_ sql: String) async throws -> [SQLRow] { try await query(sql, []) }
}

/// A `Store` whose transactions run SQL: what SQLite and PostgreSQL stores share, so code
/// written against it (the demo, tests, your own handlers) runs on both. Its rows are
/// ``SQLRows``, the one SQL of both backends.
public protocol SQLStore: Store where Transaction: SQLTransaction {
    /// The SQL flavour the store speaks.
    var dialect: SQLDialect { get }
}

extension SQLStore {
    /// The dialect's ``SQLDialect/hasConcurrentWriters``: `true` on PostgreSQL, `false` on SQLite.
    public var runsStepsConcurrently: Bool { dialect.hasConcurrentWriters }

    /// Runs `body` in a transaction that holds the store's schema lock — the lock Unrace's own
    /// migrations take (a PostgreSQL transaction-scoped advisory lock; SQLite's single writer) —
    /// so set-up that creates tables or seeds rows, run by several processes starting at once
    /// (replicas of a rolling deploy), runs one process at a time. PostgreSQL's
    /// `CREATE TABLE IF NOT EXISTS` is not safe against itself: two concurrent ones can fail on
    /// the system catalog's unique index.
    /// - Throws: store errors; what `body` throws (nothing of it is written then).
    public func withSchemaLock<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        try await withTransaction { tx in
            if let lock = dialect.schemaLockStatement { try await tx.execute(lock) }
            return try await body(tx)
        }
    }

    /// ``SQLRows`` in the given transaction: on PostgreSQL a real-time clock is replaced by the
    /// database's, as in a step; SQLite reads `clock` now.
    public func rows(joining transaction: Transaction, clock: any WallClock) async throws -> any StoreRows {
        sqlRows(joining: transaction, clock: clock)
    }

    /// ``SQLRows`` in `transaction`, as ``rows(joining:clock:)`` gives them: for stores that check
    /// the transaction is theirs first.
    package func sqlRows(joining transaction: Transaction, clock: any WallClock) -> any StoreRows {
        let time: Timestamp? = dialect.clockExpression != nil && clock.isRealTime ? nil : clock.now()
        return SQLRows(transaction, dialect: dialect, time: time)
    }
}

/// A SQL database as Unrace's one SQL needs to know it: described by what it can do, not by
/// its name, so the same statements run on each and a new database is a new value, not a new
/// copy of the statements (see sql-kit's `SQLDialect`). ``SQLRows`` asks these capabilities
/// wherever engines differ.
public struct SQLDialect: Sendable, Hashable {
    /// A short name, such as `sqlite` or `postgres`.
    public let name: String
    /// Whether several transactions write at once (PostgreSQL). Then the rows a decision depends
    /// on are read with ``rowLockClause``, and a row that may be absent is reserved by inserting
    /// it first, so a concurrent step waits on it. `false` (SQLite): one writer at a time, whose
    /// reads are locks already.
    public let hasConcurrentWriters: Bool
    /// Appended to a read that must lock what it returns until the transaction ends (`FOR
    /// UPDATE`), or empty where reads lock already.
    public let rowLockClause: String
    /// Appended to a read that takes rows no other transaction holds (`FOR UPDATE SKIP LOCKED`),
    /// so concurrent workers take different queue messages; empty where writers are one at a time.
    public let skipLockedClause: String
    /// Appended to a text column in `ORDER BY` so it sorts byte-wise (`COLLATE "C"`), or empty
    /// where byte order is the default: every store picks the same rows for a bounded batch.
    public let byteOrderCollation: String
    /// An SQL expression of the database's own clock in epoch milliseconds, which decides leases
    /// and expiries when the caller's clock is real time (a database shared by machines); `nil`
    /// when the caller's clock decides (one machine).
    public let clockExpression: String?
    /// Whether one statement may write twice (a data-modifying `WITH`): the inbox's applied
    /// event and stream head then go in one round trip.
    public let combinesWrites: Bool
    /// The statement that starts a step's transaction: SQLite's `BEGIN IMMEDIATE` takes the
    /// writer before the first read, so a step decides on what no other writer can change;
    /// PostgreSQL's names read committed, which the guards' locking reads are written for,
    /// whatever the database's `default_transaction_isolation`.
    public let beginStatement: String
    /// A statement that serialises schema changes across processes (transaction-scoped advisory
    /// locks: on PostgreSQL one per schema, so stores in other schemas of one database do not
    /// wait on each other, and the database-wide key earlier releases took, shared, so they
    /// wait for those), or `nil` where the single writer does.
    public let schemaLockStatement: String?
    /// The column type of bytes.
    public let blobType: String
    /// The column type of 64-bit integers.
    public let integerType: String
    /// Appended to `CREATE TABLE` of tables keyed by their primary key (`WITHOUT ROWID`), or empty.
    public let keyedTableSuffix: String
    /// A column definition of an ever-growing 64-bit primary key the database assigns.
    public let identityColumn: String
    /// Whether `ALTER TABLE … DROP CONSTRAINT` exists (PostgreSQL). Without it (SQLite) a
    /// migration drops a table constraint by rebuilding the table.
    public let dropsConstraints: Bool
    /// A query with one `?` (a table name) answering one row whose `present` column says whether
    /// the table exists in the current schema (the one new tables go to), or none when it is
    /// nowhere; PostgreSQL's also names the `schema` it was found in on the search path.
    public let tableExistsQuery: String

    /// SQLite: one writer at a time, so reads need no row locks; the caller's clock decides.
    public static let sqlite = SQLDialect(
        name: "sqlite",
        hasConcurrentWriters: false,
        rowLockClause: "",
        skipLockedClause: "",
        byteOrderCollation: "",
        clockExpression: nil,
        combinesWrites: false,
        beginStatement: "BEGIN IMMEDIATE",
        schemaLockStatement: nil,
        blobType: "BLOB",
        integerType: "INTEGER",
        keyedTableSuffix: " WITHOUT ROWID",
        identityColumn: "INTEGER PRIMARY KEY AUTOINCREMENT",
        dropsConstraints: false,
        tableExistsQuery: "SELECT COUNT(*) > 0 AS present FROM sqlite_master WHERE type = 'table' AND name = ?"
    )
    /// The schema lock on PostgreSQL: the database-wide key earlier releases took exclusively,
    /// taken shared, then the per-schema key exclusively. A replica of an earlier release and one
    /// of this release exclude each other during a rolling deploy (exclusive against shared),
    /// while this release's migrations of different schemas still run at once (shared with
    /// shared; only the per-schema key serialises).
    static let postgresSchemaLock =
        "SELECT pg_advisory_xact_lock_shared(7220001), pg_advisory_xact_lock(7220001, hashtext(current_schema()))"

    /// PostgreSQL (and Postgres-compatible engines): concurrent writers, so rows a decision
    /// depends on are read `FOR UPDATE`; the database's clock decides.
    public static let postgres = SQLDialect(
        name: "postgres",
        hasConcurrentWriters: true,
        rowLockClause: " FOR UPDATE",
        skipLockedClause: " FOR UPDATE SKIP LOCKED",
        byteOrderCollation: " COLLATE \"C\"",
        clockExpression: "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint",
        combinesWrites: true,
        beginStatement: "BEGIN ISOLATION LEVEL READ COMMITTED",
        schemaLockStatement: postgresSchemaLock,
        blobType: "BYTEA",
        integerType: "BIGINT",
        keyedTableSuffix: "",
        identityColumn: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        dropsConstraints: true,
        tableExistsQuery: """
            SELECT n.nspname = current_schema() AS present, n.nspname::text AS schema
            FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
            WHERE c.oid = to_regclass(?)
            """
    )

    /// A dialect described by its capabilities (each is documented on its property). Package
    /// only: a database is added here, with its run of the differential suite, not by a user —
    /// inconsistent capabilities (concurrent writers without a skip-locked clause, say) would
    /// break guarantees silently, and parts of the SQL still assume one of the two dialects.
    package init(
        name: String,
        hasConcurrentWriters: Bool,
        rowLockClause: String,
        skipLockedClause: String,
        byteOrderCollation: String,
        clockExpression: String?,
        combinesWrites: Bool,
        beginStatement: String,
        schemaLockStatement: String?,
        blobType: String,
        integerType: String,
        keyedTableSuffix: String,
        identityColumn: String,
        dropsConstraints: Bool,
        tableExistsQuery: String
    ) {
        self.name = name
        self.hasConcurrentWriters = hasConcurrentWriters
        self.rowLockClause = rowLockClause
        self.skipLockedClause = skipLockedClause
        self.byteOrderCollation = byteOrderCollation
        self.clockExpression = clockExpression
        self.combinesWrites = combinesWrites
        self.beginStatement = beginStatement
        self.schemaLockStatement = schemaLockStatement
        self.blobType = blobType
        self.integerType = integerType
        self.keyedTableSuffix = keyedTableSuffix
        self.identityColumn = identityColumn
        self.dropsConstraints = dropsConstraints
        self.tableExistsQuery = tableExistsQuery
    }
}
