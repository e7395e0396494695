public import FluentKit
import Foundation
public import Logging
import NIOCore
import PostgresNIO
import SQLiteNIO
import Synchronization
public import Unrace
import UnracePostgres
public import UnraceSQL

/// Unrace on your application's Fluent database: every guard, with your Fluent models written in
/// the claim's own transaction.
///
/// The store runs the same SQL and the same decisions as `SQLiteStore` and `PostgresStore`, on
/// connections of the Fluent database you already have (its pool, its configuration): a step
/// leases one connection from Fluent, begins a transaction on it, and hands the body a
/// ``FluentTransaction`` whose ``FluentTransaction/fluent`` database is bound to that connection.
/// A model saved through it commits with the claim, or not at all; a duplicate never runs the
/// body.
///
/// - **PostgreSQL** (`FluentPostgresDriver`): the claim-first protocol of `PostgresStore` — the
///   fresh claim is inserted first so a concurrent duplicate waits on it — leases and expiries
///   on the database's clock, serialization failures and deadlocks retried whole. ``stepTimeout``
///   bounds the whole step, your statements through ``FluentTransaction/fluent`` included: they
///   pass the step's guard as Unrace's do, so one in flight at the deadline (or when the caller is
///   cancelled) is cut off by closing the connection, later ones are refused, and one sent on a
///   connection known to be lost fails at once with a retryable `store_unavailable` (one the
///   loss overtakes, or on a server that stopped answering, within the step timeout). The server
///   also stops each statement of a write step at the step timeout (`SET LOCAL statement_timeout`),
///   so work left running after such a close ends, and its locks go, without waiting for the
///   server to notice the closed connection.
/// - **SQLite** (`FluentSQLiteDriver`): `BEGIN IMMEDIATE`, so a step takes the writer before it
///   reads and decides on what no other writer can change; the steps of one store run one at a
///   time (Fluent's pool has a connection per event loop; SQLite has one writer). Leases are
///   decided on the caller's clock. Other processes on the same file wait for the writer (SQLiteNIO
///   retries a busy database).
/// - Other drivers (MySQL) are refused with ``UnraceCore/UnraceError/Code/unsupportedDatabase``:
///   their locking is not described by a dialect Unrace knows. So is FluentPostgresDriver's
///   `PostgresClient` configuration (`.postgres(configuration: PostgresClient.Configuration, …)`
///   or `.postgres(client:)`), whose connections a step cannot hold and guard: configure the
///   database with `.postgres(configuration: SQLPostgresConfiguration(…))`.
///
/// The store migrates Unrace's own tables when it is created (under the schema lock); your
/// models' migrations stay Fluent's.
public final class FluentStore: SQLStore {
    /// The handle a step's body writes through: a Fluent database and SQL, in the step's transaction.
    public typealias Transaction = FluentTransaction

    /// The Fluent database the store runs on (the first loop's, when it runs on an application's
    /// `Databases`).
    public let database: any Database
    private let source: DatabaseSource
    /// The SQL flavour of the database's driver.
    public let dialect: SQLDialect
    /// On PostgreSQL, the longest a step may hold its connection (see `PostgresStore.stepTimeout`).
    public let stepTimeout: Duration
    /// `fluent-postgres` or `fluent-sqlite`.
    public var backendName: String { "fluent-\(dialect.name)" }

    private let logger: Logger
    private let steps: PostgresSteps
    /// Where the store's rows land: an application's database (its `Databases` and id), or for a
    /// store made on one database handle, the store itself.
    private let location: String
    /// SQLite's one writer, in this process.
    private let writer = AsyncLock()

    /// Creates a store on a Fluent database and migrates Unrace's tables in it. Its transactions
    /// join no other store's (a queue of another store refuses them), since a database handle
    /// does not say which database it is; stores made with ``init(databases:id:stepTimeout:logger:)``
    /// on one application database join each other's.
    /// - Parameters:
    ///   - database: the application's database (`app.db`, or `app.db(.psql)`).
    ///   - stepTimeout: on PostgreSQL, the longest one step may hold its connection (1 s to 1 h;
    ///     default 30 s).
    /// - Throws: ``UnraceCore/UnraceError/Code/unsupportedDatabase`` for a driver other than
    ///   PostgreSQL or SQLite, or FluentPostgresDriver's `PostgresClient` configuration;
    ///   ``UnraceCore/UnraceError/Code/invalidConfiguration``; the
    ///   migration's errors.
    public convenience init(
        database: any Database,
        stepTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "unrace.fluent")
    ) async throws {
        try await self.init(source: .single(database), stepTimeout: stepTimeout, logger: logger)
    }

    /// Creates a store on one of an application's databases (`app.databases`, Vapor's) and
    /// migrates Unrace's tables in it: each step takes a connection of the database on one of
    /// the group's event loops. Prefer it to ``init(database:stepTimeout:logger:)``: Fluent's
    /// SQLite driver keeps one connection per event loop, so on SQLite every write step runs on
    /// the first loop's connection and read-only steps (a `peek` while a request holds its key,
    /// status reads) on the others' — a read never waits for a running step, given two loops or
    /// more (on one loop, reads share the writer's connection and wait for it, as with
    /// ``init(database:stepTimeout:logger:)``). On PostgreSQL the steps spread over every loop's pool.
    /// - Parameters:
    ///   - databases: the application's databases.
    ///   - id: which of them (`nil`: the one that is the default when the store is made; a later
    ///     `default(to:)` does not move the store).
    /// - Throws: as ``init(database:stepTimeout:logger:)``; ``UnraceCore/UnraceError/Code/invalidConfiguration``
    ///   when `databases` has no such database.
    public convenience init(
        databases: Databases,
        id: DatabaseID? = nil,
        stepTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "unrace.fluent")
    ) async throws {
        let loops = Array(databases.eventLoopGroup.makeIterator())
        // FluentKit traps on an id it does not have (or `nil` with no default): check first, and
        // keep the id `nil` stood for, so a later `default(to:)` never moves the store.
        guard let id = Loops.resolve(id, in: databases) else {
            throw UnraceError(
                .invalidConfiguration,
                id == nil ? "the Fluent databases have no default database" : "there is no such Fluent database",
                detail: id.map { "no database registered as \($0.string)" }
            )
        }
        guard !loops.isEmpty, databases.database(id, logger: logger, on: loops[0]) != nil else {
            throw UnraceError(.invalidConfiguration, "the Fluent databases were shut down")
        }
        try await self.init(
            source: .databases(Loops(databases: databases, id: id, logger: logger, loops: loops)),
            stepTimeout: stepTimeout,
            logger: logger
        )
    }

    private init(source: DatabaseSource, stepTimeout: Duration, logger: Logger) async throws {
        let database = try source.database(writing: true, concurrentWriters: false)
        if database is any PostgresDatabase {
            dialect = .postgres
        } else if database is any SQLiteDatabase {
            dialect = .sqlite
        } else if Self.sqlDialectName(of: database) == "postgresql" {
            // FluentPostgresDriver's `.postgres(configuration: PostgresClient.Configuration, …)`
            // (or `client:`): its connections are not reachable as `PostgresConnection`s, on
            // which a step's guard runs.
            throw UnraceError(
                .unsupportedDatabase,
                "FluentStore runs on FluentPostgresDriver's pooled configuration, not the PostgresClient one",
                detail: "configure the database with .postgres(configuration: SQLPostgresConfiguration(…)); got \(type(of: database))"
            )
        } else {
            throw UnraceError(
                .unsupportedDatabase,
                "FluentStore runs on Fluent's PostgreSQL and SQLite drivers",
                detail: "\(type(of: database))"
            )
        }
        guard stepTimeout >= .seconds(1), stepTimeout <= .seconds(3_600) else {
            throw UnraceError(.invalidConfiguration, "stepTimeout must be between 1 second and 1 hour")
        }
        self.source = source
        self.database = database
        self.stepTimeout = stepTimeout
        self.logger = logger
        self.steps = PostgresSteps(logger: logger, stepTimeout: stepTimeout)
        switch source {
        case .databases(let loops): self.location = "databases \(ObjectIdentifier(loops.databases)) \(loops.id.string)"
        case .single: self.location = "store \(UUID().uuidString)"
        }
        try await migrate()
    }

    private func migrate() async throws {
        let now = SystemWallClock().now()
        if !dialect.hasConcurrentWriters { try await useWriteAheadLog() }
        _ = try await transaction(timed: false) { tx in
            if let lock = dialect.schemaLockStatement { try await tx.execute(lock) }
            return try await SQLSchema.migrations(dialect).apply(tx, now: now)
        }
    }

    /// Puts the SQLite file in WAL mode (it stays so), as `SQLiteStore` does: in SQLite's default
    /// rollback journal, a reader's open transaction on another connection (a report route's)
    /// holds every step's `COMMIT` until the step timeout. A file that cannot switch (an
    /// in-memory database answers `memory`; a read-only file fails) keeps its mode.
    private func useWriteAheadLog() async throws {
        let busy = statementTimeoutMilliseconds
        try await writer.withLock {
            try await withLeasedConnection(writing: true) { db in
                let connection = try await (db as! any SQLiteDatabase).withConnection { $0.eventLoop.makeSucceededFuture($0) }.get()
                let tx = SQLiteConnectionTransaction(connection: connection)
                defer { tx.gate.end() }
                try await tx.execute("PRAGMA busy_timeout = \(busy)", [])
                // A file that cannot switch (read-only, say) keeps its mode: opening it only reads.
                let mode = try? await tx.query("PRAGMA journal_mode = WAL", []).first?["journal_mode"].string
                if mode != "wal" {
                    logger.notice("the SQLite database keeps its journal mode", metadata: ["journal_mode": "\(mode ?? "?")"])
                }
            }
        }
    }

    /// ``SQLRows`` in a transaction of this store's database: one this store, or another store on
    /// the same application database (the same `Databases` and id), handed out.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a transaction of another database.
    public func rows(joining transaction: FluentTransaction, clock: any WallClock) async throws -> any StoreRows {
        guard transaction.owner == location else { throw UnraceError.foreignTransaction }
        return sqlRows(joining: transaction, clock: clock)
    }

    // MARK: Store

    /// Runs `body` as one step: a transaction on one of the Fluent database's connections.
    public func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<FluentTransaction>) async throws -> T) async throws -> T {
        try StepNesting.check()
        let dialect = dialect
        let clock = step.clock
        let work: (FluentTransaction) async throws -> T = { tx in
            // PostgreSQL decides on its own clock when the caller's is real time; SQLite reads the
            // caller's clock now that the step holds the writer.
            let time: Timestamp? = dialect.clockExpression != nil && clock.isRealTime ? nil : clock.now()
            return try await body(StepContext(transaction: tx, rows: SQLRows(tx, dialect: dialect, time: time)))
        }
        if step.isReadOnly { return try await reading(work) }
        return try await transaction(work)
    }

    /// Runs a read-only step's statements outside a transaction and without the writer, as
    /// `SQLiteStore` and `PostgresStore` do: a read never waits for a writer (a `peek` while
    /// the key's holder completes it, say).
    private func reading<T: Sendable>(_ body: (FluentTransaction) async throws -> T) async throws -> T {
        let steps = steps
        if dialect.hasConcurrentWriters {
            return try await steps.retrying {
                try await PostgresTransaction.mapErrors {
                    try await withLeasedConnection(writing: false) { db in
                        let connection = try await (db as! any PostgresDatabase).withConnection { $0.eventLoop.makeSucceededFuture($0) }
                            .get()
                        let stepGuard = ConnectionGuard(connection)
                        return try await steps.bounded(stepGuard) {
                            let tx = PostgresTransaction(connection: connection, logger: logger, stepGuard: stepGuard)
                            let fluent = GuardedFluentDatabase(base: db, gate: .postgres(stepGuard))
                            return try await StepNesting.inside {
                                try await body(FluentTransaction(fluent: fluent, sql: .postgres(tx), owner: location))
                            }
                        }
                    }
                }
            }
        }
        return try await withLeasedConnection(writing: false) { db in
            let connection = try await (db as! any SQLiteDatabase).withConnection { $0.eventLoop.makeSucceededFuture($0) }.get()
            let tx = SQLiteConnectionTransaction(connection: connection)
            defer { tx.gate.end() }
            let fluent = GuardedFluentDatabase(base: db, gate: .sqlite(tx.gate))
            return try await StepNesting.inside {
                try await body(FluentTransaction(fluent: fluent, sql: .sqlite(tx), owner: location))
            }
        }
    }

    /// Runs `body` in a transaction with no Unrace rows: plain business writes, Fluent or SQL. On
    /// PostgreSQL it runs at read committed, as every step.
    public func withTransaction<T: Sendable>(_ body: (FluentTransaction) async throws -> T) async throws -> T {
        try StepNesting.check()
        return try await transaction(body)
    }

    /// ``stepTimeout`` in milliseconds, PostgreSQL's `statement_timeout` for a step's statements:
    /// the server's own bound on a statement the step's close left running.
    private var statementTimeoutMilliseconds: Int64 { stepTimeout.wholeMilliseconds }

    /// Runs `body` in a transaction on a connection leased from Fluent. The body runs in the
    /// caller's task (so its cancellation is the caller's); the lease is held by a child task
    /// until the body is done (``withLeasedConnection(_:)``).
    private func transaction<T: Sendable>(timed: Bool = true, _ body: (FluentTransaction) async throws -> T) async throws -> T {
        let steps = steps
        if dialect.hasConcurrentWriters {
            return try await steps.retrying {
                try await PostgresTransaction.mapErrors {
                    try await withLeasedConnection(writing: true) { db in
                        let connection = try await (db as! any PostgresDatabase).withConnection { $0.eventLoop.makeSucceededFuture($0) }
                            .get()
                        return try await steps.transaction(on: connection, timed: timed) { tx in
                            // The server's bound on each statement, for one the step's close
                            // leaves running there; the body's Fluent statements pass the guard.
                            if timed { try await tx.execute("SET LOCAL statement_timeout = \(statementTimeoutMilliseconds)") }
                            let fluent = GuardedFluentDatabase(base: db, gate: .postgres(tx.stepGuard))
                            return try await body(FluentTransaction(fluent: fluent, sql: .postgres(tx), owner: location))
                        }
                    }
                }
            }
        }
        return try await writer.withLock {
            try await withLeasedConnection(writing: true) { db in
                let connection = try await (db as! any SQLiteDatabase).withConnection { $0.eventLoop.makeSucceededFuture($0) }.get()
                return try await Self.sqliteTransaction(connection, busyTimeoutMilliseconds: statementTimeoutMilliseconds) { tx in
                    let fluent = GuardedFluentDatabase(base: db, gate: .sqlite(tx.gate))
                    return try await StepNesting.inside {
                        try await body(FluentTransaction(fluent: fluent, sql: .sqlite(tx), owner: location))
                    }
                }
            }
        }
    }

    /// Leases a connection from Fluent for the duration of `body`, which runs in the caller's
    /// task: Fluent runs the closures it is given on a task of its own, so a task takes the
    /// lease, lends its connection-bound database to the caller, and gives the lease back when
    /// `body` is done. A caller cancelled while it waits for a connection gets `CancellationError`
    /// at once; the lease, if it comes, goes straight back to the pool.
    private func withLeasedConnection<T>(writing: Bool, _ body: (any Database) async throws -> T) async throws -> T {
        let loan = Loan<any Database>()
        let database = try source.database(writing: writing, concurrentWriters: dialect.hasConcurrentWriters)
        let lease = Task {
            do {
                try await database.withConnection { db in await loan.lend(db) }
            } catch {
                loan.fail(error)
            }
        }
        let db: any Database
        do {
            db = try await loan.borrow()
        } catch is CancellationError {
            loan.giveBack()  // the lease ends on its own: FluentKit's wait for a connection cannot be cancelled
            throw CancellationError()
        } catch {
            loan.giveBack()
            await lease.value
            if Task.isCancelled { throw CancellationError() }
            if String(describing: type(of: error)) == "ConnectionPoolError" {
                // AsyncKit's pool shut down (the application stopping) while the step waited.
                throw UnraceError(
                    .storeUnavailable,
                    "the Fluent database's pool shut down; nothing was sent",
                    detail: "\(error)",
                    underlying: error
                )
            }
            guard String(describing: type(of: error)) == "ConnectionPoolTimeoutError" else { throw error }
            // AsyncKit's pool (Fluent's) had no connection to give within its timeout: every one is
            // busy. Nothing was sent; the type is public in AsyncKit, which Unrace does not import.
            throw UnraceError(
                .storeUnavailable,
                "no connection of the Fluent database's pool was free within its timeout",
                detail: "\(error)",
                underlying: error
            )
        }
        return try await loan.use(db, until: lease, body)
    }

    /// `BEGIN IMMEDIATE` … `COMMIT` on one SQLite connection; a body that throws, or a cancelled
    /// caller, rolls back.
    ///
    /// SQLiteNIO's connections retry a locked database forever, at once and without end (a busy
    /// handler that always says "again"): while another process held the file's write lock, a
    /// step spun, uncancellable, and every later write queued behind it. `busy_timeout` replaces
    /// that handler on the connection: past `busyTimeoutMilliseconds` (the step timeout) the step
    /// fails with a retryable `store_unavailable`, as `SQLiteStore`'s do past its busy timeout.
    private static func sqliteTransaction<T>(
        _ connection: SQLiteConnection,
        busyTimeoutMilliseconds: Int64,
        _ body: (SQLiteConnectionTransaction) async throws -> T
    ) async throws -> T {
        let tx = SQLiteConnectionTransaction(connection: connection)
        defer { tx.gate.end() }
        try await tx.execute("PRAGMA busy_timeout = \(busyTimeoutMilliseconds)", [])
        try await tx.execute(SQLDialect.sqlite.beginStatement, [])
        do {
            let result = try await body(tx)
            try Task.checkCancellation()  // a cancelled caller commits nothing
            try await tx.execute("COMMIT", [])
            return result
        } catch {
            // On a task of its own: SQLiteNIO refuses to run a statement for a cancelled task, and
            // a connection left inside its transaction would go back to the pool. One whose
            // rollback fails is closed instead.
            let rolledBack = await Task.detached { (try? await tx.execute("ROLLBACK", [])) != nil }.value
            if !rolledBack { try? await connection.close() }
            throw error
        }
    }
}

extension FluentStore: RowsIdentifying {
    /// Its location, the same that decides whose transactions it joins.
    package var rowsIdentity: String { "fluent \(location)" }
}
