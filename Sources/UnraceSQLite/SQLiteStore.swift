import Foundation
import GRDB
public import Logging
public import Unrace
import UnraceCore
public import UnraceSQL

/// The embedded default ``Store``: one SQLite file in WAL mode, through GRDB.
///
/// Write steps run one at a time on the single writer connection (`BEGIN IMMEDIATE`), so a
/// claim, its decision and the body's writes can never interleave with another step's: a read
/// inside the step is a lock. Several processes may open the same file: SQLite's file locks
/// serialise their writers, waiting up to ``Configuration/busyTimeout`` each. Steps decide at
/// the caller's clock, read once the step holds the writer (one machine, one clock). For many
/// machines, use PostgreSQL.
///
/// A step whose task is cancelled rolls back and releases the writer before it returns, on a
/// path cancellation cannot skip.
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
        /// How long a step waits for another connection's write lock (another process, another
        /// store on the file) before failing with ``UnraceError/Code/storeUnavailable``. A caller
        /// cancelled meanwhile stops waiting at once, with `CancellationError`. Default 10 s;
        /// 0 to 600 s.
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
    /// The file this store opened, as the file system knows it (device and inode): two paths
    /// name one file when these match, whatever their spelling.
    let file: FileIdentity
    private let writer = AsyncLock()
    /// Set when the caller of the step that holds ``writer`` is cancelled: the busy handler then
    /// stops waiting for another connection's write lock (SQLite's own wait ignores interrupts).
    let writerCancelled = CancelFlag()
    private let logger: Logger

    /// Opens (creating if needed) a database file and migrates its schema.
    /// - Throws: ``UnraceError`` with ``UnraceError/Code/unsupportedDatabase`` if the linked
    ///   SQLite is older than 3.35, ``UnraceError/Code/schemaTooNew``, or
    ///   ``UnraceError/Code/storeUnavailable`` if the file cannot be opened,
    ///   ``UnraceError/Code/invalidArgument`` for an empty path, one with a NUL byte, a `file:` URI,
    ///   or a file with more than one hard link (SQLite names its WAL and lock files after the
    ///   path, so writers through two links would not be serialised; a symbolic link is fine).
    public init(path: String, configuration: Configuration = .init(), logger: Logger = Logger(label: "unrace.sqlite")) async throws {
        guard configuration.busyTimeout >= .zero, configuration.busyTimeout <= .seconds(600) else {
            throw UnraceError(.invalidConfiguration, "busyTimeout must be between 0 and 600 seconds")
        }
        // A C string ends at NUL: "a.sqlite\0x" would open a.sqlite under another name.
        // A `file:` URI opens the file it names, not the path given: a file path only.
        guard !path.isEmpty, !path.utf8.contains(0), !path.lowercased().hasPrefix("file:") else {
            throw UnraceError(
                .invalidArgument,
                "a SQLite path must be a non-empty file path without NUL, not a file: URI",
                detail: path.debugDescription
            )
        }
        // SQLite names a database's WAL and lock files after the path it was opened by: writers
        // through two hard links of one file take two locks and corrupt it.
        if let links = FileIdentity.linkCount(path: path), links > 1 {
            throw UnraceError(
                .invalidArgument,
                "a SQLite database file must have one name: it has \(links) hard links, whose writers SQLite would not serialise",
                detail: path.debugDescription
            )
        }
        self.path = path
        self.logger = logger
        var grdb = GRDB.Configuration()
        // The writer waits for another connection's lock as SQLite's own timeout does, and stops
        // at once when its step's caller is cancelled. (GRDB gives the pool's read-only readers
        // a busy mode of their own; in WAL mode a reader meets a busy lock only while a
        // connection recovers the WAL index.)
        grdb.busyMode = .callback(Self.busyHandler(timeout: configuration.busyTimeout, cancelled: writerCancelled))
        // Unrace opens a transaction in one writer access and commits it in a later one (the body
        // in between may await); `writer` guarantees no other step uses the connection meanwhile.
        grdb.allowsUnsafeTransactions = true
        grdb.label = "unrace"
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw UnraceError(.storeUnavailable, "the SQLite database could not be opened", detail: path, underlying: error)
        }
        guard let file = FileIdentity(path: path) else {
            throw UnraceError(.storeUnavailable, "the SQLite database was opened but cannot be found by its path", detail: path)
        }
        self.file = file
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
                .unsupportedDatabase,
                "Unrace needs SQLite 3.35 or later (for RETURNING)",
                detail: "linked SQLite \(version)"
            )
        }
        _ = try await transaction { tx in
            try await SQLSchema.migrations(.sqlite).apply(tx, now: SystemWallClock().now())
        }
    }

    /// The `synchronous` setting the writer connection actually has (2 = FULL, 1 = NORMAL).
    public func writerSynchronousSetting() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// ``SQLRows`` in a transaction of this database file: one this store, or another store on
    /// the same file, handed out.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a transaction on another file.
    public func rows(joining transaction: SQLiteTransaction, clock: any WallClock) async throws -> any StoreRows {
        // One file, as the file system sees it: Unicode-equivalent spellings (NFC and NFD) are
        // two files on Linux, and a relative path is resolved when its store opened it.
        guard transaction.pool === pool || transaction.file == file else {
            throw UnraceError.foreignTransaction
        }
        // As a step's: the time is read once the transaction holds the file's write lock.
        return SQLRows(transaction, dialect: .sqlite, time: nil) {
            try await transaction.begin()
            return clock.now()
        }
    }

    // MARK: Store

    /// Runs `body` as one step: a write transaction on the writer (`BEGIN IMMEDIATE` … `COMMIT`),
    /// or, for a read-only step, reads on a reader connection.
    public func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<SQLiteTransaction>) async throws -> T) async throws -> T {
        try StepNesting.check()
        if step.isReadOnly {
            let tx = SQLiteTransaction(pool: pool, file: file, access: .read)
            defer { tx.end() }
            let context = StepContext(transaction: tx, rows: SQLRows(tx, dialect: .sqlite, time: step.clock.now()))
            return try await StepNesting.inside { try await body(context) }
        }
        // The step's time is read as it takes the file's write lock: right after BEGIN IMMEDIATE,
        // which may have waited for another connection (another store, another process).
        let clock = step.clock
        return try await transaction(clock: clock) { tx in
            let rows = SQLRows(tx, dialect: .sqlite, time: nil) {
                try await tx.begin()
                return tx.beganAt ?? clock.now()
            }
            return try await body(StepContext(transaction: tx, rows: rows))
        }
    }

    /// Runs `body` in a transaction with no Unrace rows.
    public func withTransaction<T: Sendable>(_ body: (SQLiteTransaction) async throws -> T) async throws -> T {
        try await transaction(body)
    }

    /// Runs `body` between `BEGIN IMMEDIATE` and `COMMIT` on the writer, rolling back if it throws
    /// or the task is cancelled.
    func transaction<T>(clock: (any WallClock)? = nil, _ body: (SQLiteTransaction) async throws -> T) async throws -> T {
        try StepNesting.check()
        return try await writer.withLock {
            // BEGIN IMMEDIATE travels with the body's first statement, COMMIT with its queued ones.
            let tx = SQLiteTransaction(pool: pool, file: file, access: .write, clock: clock)
            let cancelled = writerCancelled
            cancelled.reset()
            do {
                // The commit too: a body that only queued statements begins there, and may wait.
                return try await withTaskCancellationHandler {
                    let result = try await StepNesting.inside { try await body(tx) }
                    try Task.checkCancellation()  // a cancelled caller commits nothing
                    try await tx.commit()
                    return result
                } onCancel: {
                    cancelled.set()
                }
            } catch {
                tx.end()
                await rollback()
                throw error
            }
        }
    }

    /// Rolls back whatever transaction the writer has open. GRDB refuses database access from a
    /// cancelled task, so the rollback runs in a task of its own, which nothing cancels; the
    /// writer lock is released only after it.
    private func rollback() async {
        let pool = pool
        let result = await Task.detached {
            try await pool.writeWithoutTransaction { db in
                if db.isInsideTransaction { try db.execute(sql: "ROLLBACK") }
            }
        }.result
        if case .failure(let error) = result {
            logger.error("rollback after a failed step also failed", metadata: ["error": "\(error)"])
        }
    }
}

/// A file as the file system knows it: its device and inode.
struct FileIdentity: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    /// The file at `path` (links followed), or `nil` when there is none.
    init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
    }

    /// How many hard links the file at `path` (links followed) has, or `nil` when there is none.
    static func linkCount(path: String) -> UInt64? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return UInt64(status.st_nlink)
    }
}

extension SQLiteStore: RowsIdentifying {
    /// The database file (device and inode): every path and instance that opens it.
    package var rowsIdentity: String { "sqlite \(file.device):\(file.inode)" }
}
