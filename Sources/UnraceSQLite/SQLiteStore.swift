public import Unrace
public import UnraceCore
public import Logging
import GRDB
import Foundation

/// The embedded default ``Store``: one SQLite file in WAL mode, through GRDB.
///
/// Write steps run one at a time on the single writer connection (`BEGIN IMMEDIATE`), so a
/// claim and the body's writes can never interleave with another step's. Several processes may
/// open the same file: SQLite's file locks serialise their writers, waiting up to
/// ``Configuration/busyTimeout`` each. For many machines, use PostgreSQL.
public final class SQLiteStore: SQLStore {
    /// The handle a step's body writes through.
    public typealias Transaction = SQLiteTransaction

    /// How a ``SQLiteStore`` opens its file.
    public struct Configuration: Sendable {
        /// How durable a commit is.
        public struct Durability: Sendable, Hashable {
            let pragma: String
            /// `synchronous = FULL`: a commit survives power loss. The default.
            public static let full = Durability(pragma: "FULL")
            /// `synchronous = NORMAL`: faster; in WAL mode a power loss (not a process crash) may
            /// roll back the last commits since the latest checkpoint. Opt in knowingly.
            public static let normal = Durability(pragma: "NORMAL")
        }

        /// Commit durability. Default ``Durability/full``.
        public var durability: Durability = .full
        /// How long a step waits for another process's write lock before failing with
        /// ``UnraceError/Code/storeUnavailable``. Default 10 s; 0 to 600 s.
        public var busyTimeout: Duration = .seconds(10)

        /// The all-defaults configuration.
        public init() {}
    }

    /// The oldest SQLite this store runs on: 3.35.0, the first with `RETURNING`.
    public static let minimumSQLiteVersion = (major: 3, minor: 35)

    /// The file's path.
    public let path: String
    /// The backend's short name.
    public var backendName: String { "sqlite" }
    /// The SQL flavour of this store.
    public var dialect: SQLDialect { .sqlite }

    let pool: DatabasePool
    private let writer = AsyncLock()
    let table = OperationTable(lockClause: SQLDialect.sqlite.rowLockClause)
    private let logger: Logger

    /// Opens (creating if needed) a database file and migrates its schema.
    /// - Throws: ``UnraceError`` with ``UnraceError/Code/unsupportedDatabase`` if the linked
    ///   SQLite is older than 3.35, ``UnraceError/Code/schemaTooNew``, or
    ///   ``UnraceError/Code/storeUnavailable`` if the file cannot be opened.
    public init(path: String, configuration: Configuration = .init(), logger: Logger = Logger(label: "unrace.sqlite")) async throws {
        guard configuration.busyTimeout >= .zero, configuration.busyTimeout <= .seconds(600) else {
            throw UnraceError(.invalidConfiguration, "busyTimeout must be between 0 and 600 seconds")
        }
        self.path = path
        self.logger = logger
        var grdb = GRDB.Configuration()
        grdb.busyMode = .timeout(TimeInterval(configuration.busyTimeout.wholeMilliseconds) / 1_000)
        // Unrace opens a transaction in one writer access and commits it in a later one (the body
        // in between may await); `writer` guarantees no other step uses the connection meanwhile.
        grdb.allowsUnsafeTransactions = true
        grdb.label = "unrace"
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw UnraceError(.storeUnavailable, "the SQLite database could not be opened", detail: path, underlying: error)
        }
        // GRDB sets `synchronous = NORMAL` on the pool's writer after `prepareDatabase` runs, so
        // the durability pragma is set here, on the writer itself, once the pool is open.
        let version = try await SQLiteTransaction.mapErrors {
            try await self.pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = \(configuration.durability.pragma)")
                return try String.fetchOne(db, sql: "SELECT sqlite_version()") ?? "0"
            }
        }
        let parts = version.split(separator: ".").compactMap { Int($0) }
        let (major, minor) = Self.minimumSQLiteVersion
        guard parts.count >= 2, (parts[0], parts[1]) >= (major, minor) else {
            throw UnraceError(
                .unsupportedDatabase, "Unrace needs SQLite 3.35 or later (for RETURNING)", detail: "linked SQLite \(version)"
            )
        }
        _ = try await transaction { tx in
            try await Self.migrations.apply(tx, now: SystemWallClock().now())
        }
    }

    /// The `synchronous` setting the writer connection actually has (2 = FULL, 1 = NORMAL).
    public func writerSynchronousSetting() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    static let migrations = SchemaMigrations([
        .init(version: 1, statements: [
            """
            CREATE TABLE unrace_operations (
              scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint BLOB NOT NULL,
              state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'released')),
              token INTEGER NOT NULL CHECK (token >= 1), holder TEXT NOT NULL, lease_until INTEGER NOT NULL,
              recovery_point BLOB, outcome BLOB, created_at INTEGER NOT NULL, completed_at INTEGER, expires_at INTEGER,
              PRIMARY KEY (scope, key)
            ) WITHOUT ROWID
            """,
            "CREATE INDEX unrace_operations_expiry ON unrace_operations (expires_at) WHERE expires_at IS NOT NULL",
        ]),
        .init(version: 2, statements: InboxSchema.statements(blob: "BLOB", keyedTable: " WITHOUT ROWID")),
        .init(version: 3, statements: SQLLostUpdateSteps.statements(blob: "BLOB", keyedTable: " WITHOUT ROWID")),
        .init(version: 4, statements: SQLLedgerSteps.statements(keyedTable: " WITHOUT ROWID")),
    ])

    // MARK: Store

    /// Claims the key and, if acquired, runs `body` and stores its completion, in one transaction. See ``Store/performOnce(_:retention:_:)``.
    public func performOnce(
        _ request: ClaimRequest,
        retention: Duration,
        _ body: (SQLiteTransaction, FencingToken) async throws -> Completion
    ) async throws -> PerformStep {
        // Fast path, for the common case of a new key: BEGIN travels with the body's first
        // statement, and the completed record's insert-if-absent with the COMMIT, so a guarded
        // step makes as many trips to the writer as the body alone. A key that already has a
        // record rolls the body back and takes the deciding path below.
        if let fresh = ClaimDecision.insert.acquiredRecord(for: request, existing: nil) {
            let fast: PerformStep? = try await writer.withLock {
                let tx = SQLiteTransaction(pool: pool, access: .write)
                do {
                    let completion = try await body(tx, fresh.token)
                    let record = completion.apply(to: fresh, now: request.now, retention: retention)
                    let inserted = try await tx.commit(insertingIfAbsent: Self.insertIfAbsentSQL, OperationTable.values(record))
                    return inserted ? .performed(record) : nil
                } catch let error as UnraceError where error.code == .constraintViolation {
                    try? await rollback()  // a business unique key a completed duplicate wrote first
                    return nil
                } catch {
                    try? await rollback()
                    throw error
                }
            }
            if let fast { return fast }
        }
        return try await transaction { tx in try await table.performOnce(tx, request, retention: retention, body) }
    }

    private static let insertIfAbsentSQL = OperationTable.insertSQL + " ON CONFLICT (scope, key) DO NOTHING"

    private func rollback() async throws {
        try await pool.writeWithoutTransaction { db in
            if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") }
        }
    }

    /// Claims the key for a lease, in one transaction. See ``Store/claim(_:)``.
    public func claim(_ request: ClaimRequest) async throws -> ClaimStep {
        try await transaction { tx in try await table.claim(tx, request) }
    }

    /// Runs `body` and applies `write` if `token` is current, in one transaction; throws `fenced` otherwise. See ``Store/write(_:scope:key:token:now:retention:_:)``.
    public func write(
        _ write: HolderWrite, scope: Scope, key: OperationKey, token: FencingToken, now: Timestamp,
        retention: Duration, _ body: (SQLiteTransaction) async throws -> Void
    ) async throws -> OperationRecord {
        try await transaction { tx in
            try await table.write(tx, write, scope: scope, key: key, token: token, now: now, retention: retention, body)
        }
    }

    /// The stored record of a key, if any.
    public func record(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await table.fetch(SQLiteTransaction(pool: pool, access: .read), scope: scope, key: key, lock: false)
    }

    /// Deletes at most `limit` records whose retention ended before `now`.
    public func purgeExpired(now: Timestamp, limit: Int) async throws -> Int {
        try await transaction { tx in try await table.purgeExpired(tx, now: now, limit: limit) }
    }

    /// Runs `body` in a transaction with no operation record.
    public func withTransaction<T: Sendable>(_ body: (SQLiteTransaction) async throws -> T) async throws -> T {
        try await transaction(body)
    }

    /// Runs `body` between `BEGIN IMMEDIATE` and `COMMIT` on the writer, rolling back if it throws.
    func transaction<T>(_ body: (SQLiteTransaction) async throws -> T) async throws -> T {
        try await writer.withLock {
            // BEGIN IMMEDIATE travels with the body's first statement, COMMIT with its queued ones.
            let tx = SQLiteTransaction(pool: pool, access: .write)
            do {
                let result = try await body(tx)
                try await tx.commit()
                return result
            } catch {
                do { try await rollback() } catch {
                    logger.debug("rollback after a failed step also failed", metadata: ["error": "\(error)"])
                }
                throw error
            }
        }
    }
}
