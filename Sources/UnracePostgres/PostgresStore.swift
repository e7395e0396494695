import Foundation
import Logging
import NIOCore
import NIOPosix
public import PostgresNIO
public import ServiceLifecycle
import Synchronization
public import Unrace
import UnraceCore
public import UnraceSQL

/// The ``Store`` for many processes and machines sharing one PostgreSQL.
///
/// PostgreSQL is the coordination point: the primary key on `(scope, key)`, row locks
/// (`SELECT … FOR UPDATE`) and inserts that reserve a key first do the work; no in-process lock
/// is involved, so any number of processes may share the database. Rows shard by `(scope, key)`.
/// The statements are written for PostgreSQL 15; they are meant to stay within what
/// Postgres-compatible distributed engines accept, but only PostgreSQL is tested.
///
/// Time: a step whose clock is real time (``SystemWallClock``, the default) decides leases and
/// expiries on the **database's** clock, read in the deciding statement — so machines whose
/// clocks disagree still agree on every lease. A clock that is not real time (a
/// ``ManualWallClock`` in tests) is used as given.
public final class PostgresStore: SQLStore {
    /// The handle a step's body writes through.
    public typealias Transaction = PostgresTransaction

    /// How many times a step is tried in all when it meets serialization failures or deadlocks
    /// (SQLSTATE 40001, 40P01), before ``UnraceError/Code/retryLimitReached``.
    public static let retryCountMax = 8
    /// How many times a step is tried in all when it loses an insert race on one of Unrace's own
    /// tables (SQLSTATE 23505: a concurrent step created the row first; the next attempt sees it).
    /// A unique violation on any other table is the caller's and fails at once.
    public static let insertRaceRetryCountMax = 3
    /// The longest ``stepTimeout`` accepted: 1 hour.
    public static var stepTimeoutMaximum: Duration { .seconds(3_600) }
    /// How long a rollback may take before its connection is closed instead: 5 seconds.
    public static var rollbackTimeout: Duration { .seconds(5) }

    /// The longest one step (or ``withTransaction(_:)``) may hold its connection: past it the
    /// connection is closed — the server rolls the transaction back — and the step fails with
    /// ``UnraceError/Code/storeUnavailable``, retryable. A database that stopped answering (a
    /// primary gone mid-query, a network partition) never holds a caller longer than this.
    /// Default 30 s; 1 s to ``stepTimeoutMaximum``. Set it above your longest step body.
    public let stepTimeout: Duration

    /// The client the store runs its steps on.
    public let client: PostgresClient
    /// The backend's short name.
    public var backendName: String { "postgres" }
    /// The SQL flavour of this store.
    public var dialect: SQLDialect { .postgres }

    /// Where the store's rows land, as far as its making says: for a store made from a URL, the
    /// URL's user, host, port, database and `search_path`; for one made on a client, that client.
    /// Stores of one location join each other's transactions; see ``rows(joining:clock:)``.
    package let location: String

    private let logger: Logger
    /// When the client's pool last lent a step a connection or got one back, and which steps hold
    /// one (of any store on the client): a waiting step's sign of life.
    let leases: LastLease
    /// For a store that runs its own client (``init(url:maximumConnections:logger:)``): opens
    /// once ``run()`` has migrated the schema. `nil` when the caller runs the client.
    private let readiness: Readiness?
    /// How long a step waits while the pool lends nothing (``connectionWaitMaximum``, or longer).
    let connectionWait: Duration

    /// Creates a store on a client that the caller runs (`client.run()` in a long-lived task or a
    /// `ServiceGroup`), and migrates the schema. Migrations from concurrent processes serialise on
    /// an advisory lock. Start the client first: the migration waits for one of its connections,
    /// which a client that is not yet running never hands out.
    /// - Parameter stepTimeout: see ``stepTimeout`` (default 30 s).
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for a step timeout out of bounds; the
    ///   migration's errors.
    public convenience init(
        client: PostgresClient,
        stepTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "unrace.postgres")
    ) async throws {
        try await self.init(client: client, stepTimeout: stepTimeout, logger: logger, location: nil, connectTimeout: nil)
    }

    /// A store on `client`, whose rows land at `location` (`nil`: the client's own), made from a
    /// URL with `connectTimeout` (`nil`: the client's own).
    private init(
        client: PostgresClient,
        stepTimeout: Duration,
        logger: Logger,
        location: String?,
        connectTimeout: Duration?
    ) async throws {
        self.connectionWait = Self.connectionWait(connectTimeout)
        self.client = client
        self.leases = LastLease.of(client)
        self.location = location ?? "client \(ObjectIdentifier(client))"
        self.logger = logger
        self.readiness = nil
        self.stepTimeout = try Self.checked(stepTimeout)
        try await migrate()
    }

    private static func checked(_ stepTimeout: Duration) throws -> Duration {
        guard stepTimeout >= .seconds(1), stepTimeout <= stepTimeoutMaximum else {
            throw UnraceError(.invalidConfiguration, "stepTimeout must be between 1 second and 1 hour")
        }
        return stepTimeout
    }

    /// Creates a store that runs its own client as a swift-service-lifecycle `Service`: put it in
    /// a `ServiceGroup` (first, so it shuts down last). ``run()`` connects, migrates the schema
    /// and then runs the pool until the group shuts down; steps started before the schema is
    /// ready wait for it (and fail with the migration's error if it failed).
    ///
    /// The server is probed once here, so an unreachable database fails within seconds naming
    /// the host, the port and the cause, and one session is opened, so a start-up the server
    /// refuses every time (a start-up parameter such as `client_connection_check_interval`, the
    /// user or password, a missing database, `sslmode=require` without TLS) fails at once with
    /// `invalid_database_url` and the server's reason.
    /// - Parameters: as ``withStore(url:maximumConnections:logger:_:)``.
    /// - Throws: ``UnraceError/Code/invalidDatabaseURL``, ``UnraceError/Code/invalidConfiguration``,
    ///   ``UnraceError/Code/storeUnavailable``; `CancellationError` at once when the caller is
    ///   cancelled while the server is probed or the session opens.
    /// Until ``run()`` runs, steps wait (a warning is logged after 5 s of waiting): a store made this
    /// way does nothing outside a running group. `run()` on a store made with
    /// ``init(client:logger:)`` throws instead: its client is its creator's to run.
    public init(
        url: String,
        maximumConnections: Int = 20,
        stepTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "unrace.postgres")
    ) async throws {
        self.stepTimeout = try Self.checked(stepTimeout)
        let (configuration, location) = try await Self.prepare(url: url, maximumConnections: maximumConnections, logger: logger)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.connectionWait = Self.connectionWait(configuration.options.connectTimeout)
        self.leases = LastLease.of(client)
        self.location = location
        self.logger = logger
        self.readiness = Readiness()
    }

    /// Waits for ``run()`` to have migrated the schema (stores made with ``init(url:maximumConnections:logger:)``
    /// only). A step still waiting after 5 seconds logs a warning: the store is probably not in
    /// a running `ServiceGroup`.
    private func waitUntilReady() async throws {
        guard let readiness, !readiness.isOpen else { return }
        let logger = logger
        let reminder = Task {
            try await Task.sleep(for: .seconds(5))
            logger.warning("a step has waited 5 s for PostgresStore.run(): is the store in a running ServiceGroup?")
        }
        defer { reminder.cancel() }
        try await readiness.wait()
    }

    /// How many steps wait for the schema (tests).
    var waitingSteps: Int { readiness?.waiting ?? 0 }

    private func migrate() async throws {
        _ = try await transaction(timed: false) { tx in
            if let lock = SQLDialect.postgres.schemaLockStatement { try await tx.execute(lock) }
            return try await SQLSchema.migrations(.postgres).apply(tx, now: SystemWallClock().now())
        }
    }

    /// Connects to `url`, runs the client for the duration of `body`, and shuts it down after.
    ///
    /// - Parameters:
    ///   - url: `postgres://user[:password]@host[:port]/database`, optionally with
    ///     `?sslmode=disable|require`, `&search_path=schema` (the schema Unrace's tables live in:
    ///     letters, digits and `_`; one database can then hold several independent stores) and
    ///     `&client_connection_check_interval=milliseconds` (``clientConnectionCheckInterval``;
    ///     0 for a server or pooler that refuses the setting) and `&connect_timeout=seconds`
    ///     (``connectTimeout``).
    ///   - maximumConnections: the pool's size (1 to 500). Default 20.
    ///   - stepTimeout: see ``stepTimeout`` (default 30 s).
    /// - Throws: ``UnraceError/Code/invalidDatabaseURL`` for a malformed URL, or a start-up the
    ///   server refuses every time: a start-up parameter, the user or password, a missing
    ///   database, `sslmode=require` without TLS (one session is opened first to find out);
    ///   ``UnraceError/Code/storeUnavailable`` when the server cannot be reached; `CancellationError`
    ///   at once when the caller is cancelled during those checks.
    public static func withStore<T: Sendable>(
        url: String,
        maximumConnections: Int = 20,
        stepTimeout: Duration = .seconds(30),
        logger: Logger = Logger(label: "unrace.postgres"),
        _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        _ = try checked(stepTimeout)
        let (configuration, location) = try await prepare(url: url, maximumConnections: maximumConnections, logger: logger)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addRunning(client)
            defer { group.cancelAll() }
            let store = try await PostgresStore(
                client: client,
                stepTimeout: stepTimeout,
                logger: logger,
                location: location,
                connectTimeout: configuration.options.connectTimeout
            )
            return try await body(store)
        }
    }

    /// ``SQLRows`` in a transaction this store handed out; on PostgreSQL a real-time clock is
    /// replaced by the database's, as in a step.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a transaction of a store made from another
    ///   URL (user, host, port, database or `search_path`) or on another client.
    public func rows(joining transaction: PostgresTransaction, clock: any WallClock) async throws -> any StoreRows {
        // One database: the same location (the same URL's parts), or the same client.
        guard transaction.owner == location || transaction.clientID == ObjectIdentifier(client) else {
            throw UnraceError.foreignTransaction
        }
        return sqlRows(joining: transaction, clock: clock)
    }

    // MARK: Store

    /// Runs `body` as one step: a transaction (`BEGIN` … `COMMIT`) on a pooled connection, retried
    /// whole on serialization failures, deadlocks and lost insert races; a read-only step runs its
    /// statements without a transaction.
    public func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<PostgresTransaction>) async throws -> T) async throws -> T {
        try StepNesting.check()
        try await waitUntilReady()
        let given = step.clock.isRealTime ? nil : step.clock.now()
        if step.isReadOnly {
            return try await steps.retrying {
                try await PostgresTransaction.mapErrors {
                    try await withPooledConnection { connection in
                        let stepGuard = ConnectionGuard(connection)
                        return try await steps.bounded(stepGuard) {
                            let tx = PostgresTransaction(
                                connection: connection,
                                logger: logger,
                                stepGuard: stepGuard,
                                owner: location,
                                clientID: ObjectIdentifier(client)
                            )
                            let context = StepContext(transaction: tx, rows: SQLRows(tx, dialect: .postgres, time: given))
                            return try await StepNesting.inside { try await body(context) }
                        }
                    }
                }
            }
        }
        return try await transaction { tx in
            try await body(StepContext(transaction: tx, rows: SQLRows(tx, dialect: .postgres, time: given, bulk: Self.bulkStatements(tx))))
        }
    }

    /// Runs `body` in a transaction with no Unrace rows, at read committed (as every step, whatever
    /// the database's default: make `SET TRANSACTION ISOLATION LEVEL …` the body's first statement
    /// for another level). Like a step, it is run again whole after
    /// a serialization failure, a deadlock or a lost insert race on Unrace's tables (its writes
    /// rolled back each time): `body` may run more than once, so keep effects outside the
    /// database out of it.
    public func withTransaction<T: Sendable>(_ body: (PostgresTransaction) async throws -> T) async throws -> T {
        try StepNesting.check()
        try await waitUntilReady()
        return try await transaction(body)
    }

    /// Runs `body` between `BEGIN` and `COMMIT` on a pooled connection, rolling back if it throws
    /// (or the task is cancelled) and retrying, bounded and with jitter, on serialization
    /// failures, deadlocks and lost insert races on Unrace's tables.
    /// - Parameter timed: bound it by ``stepTimeout`` (every step; not the schema migration,
    ///   which may take as long as the database needs).
    func transaction<T: Sendable>(timed: Bool = true, _ body: (PostgresTransaction) async throws -> T) async throws -> T {
        try StepNesting.check()
        return try await steps.retrying {
            try await PostgresTransaction.mapErrors {
                // The schema migration (untimed) waits for the pool as long as the pool waits.
                guard timed else { return try await client.withConnection { try await steps.transaction(on: $0, timed: false, body) } }
                return try await withPooledConnection { connection in
                    try await steps.transaction(on: connection, timed: timed, body)
                }
            }
        }
    }

    /// How steps run on a connection: bounds, commit, rollback, retries.
    var steps: PostgresSteps {
        PostgresSteps(logger: logger, stepTimeout: stepTimeout, owner: location, clientID: ObjectIdentifier(client))
    }
}

// MARK: Service

extension PostgresStore: Service {
    /// Runs the client of a store made with ``init(url:maximumConnections:logger:)``: connects,
    /// migrates the schema (steps waiting for it then proceed), and runs the pool until the task
    /// is cancelled or its `ServiceGroup` shuts down gracefully.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a store whose client its creator runs,
    ///   or a second call; the migration's error (after which every step fails with it).
    public func run() async throws {
        guard let readiness else {
            throw UnraceError(
                .invalidArgument,
                "this store's client is run by whoever created it; run() is for stores made with init(url:)"
            )
        }
        guard readiness.start() else { throw UnraceError(.invalidArgument, "this store is already running") }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addRunning(client)
            do {
                try await migrate()
                readiness.open(.success(()))
            } catch {
                // Waiting steps were not cancelled themselves: they get a store error, never a
                // CancellationError that would read as their own cancellation.
                readiness.open(.failure(UnraceError(.storeUnavailable, "the store stopped before its schema was ready", underlying: error)))
                group.cancelAll()
                // A graceful shutdown during the migration closes the pool under it: a stop, not
                // a failure of the service.
                if Task.isShuttingDownGracefully || Task.isCancelled { return }
                throw error
            }
            try await group.waitForAll()
        }
        readiness.open(.failure(UnraceError(.storeUnavailable, "the store's client has stopped")))
    }
}

/// A gate that opens once: callers wait until the schema is migrated, or fail with why it is not.
/// A cancelled waiter stops waiting with `CancellationError`.
private final class Readiness: Sendable {
    private struct State {
        var started = false
        var result: Result<Void, any Error>?
        var waiters: [Int: CheckedContinuation<Void, any Error>] = [:]
        var cancelled: Set<Int> = []
        var nextID = 0
    }

    private let state = Mutex(State())

    /// Whether the gate is open on a success (the fast path of every step).
    var isOpen: Bool {
        state.withLock { state in
            if case .success = state.result { return true }
            return false
        }
    }

    /// How many callers wait.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Marks the store running; `false` if it already was.
    func start() -> Bool {
        state.withLock { state in
            defer { state.started = true }
            return !state.started
        }
    }

    /// Opens the gate with `result` (a later call replaces a success with a failure: the
    /// client stopped), resuming every waiter.
    func open(_ result: Result<Void, any Error>) {
        let waiters = state.withLock { state in
            state.result = result
            defer { state.waiters = [:] }
            return state.waiters.values
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    func wait() async throws {
        if case .success = state.withLock({ $0.result }) { return }
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Result<Void, any Error>? in
                    if let result = state.result { return result }
                    if state.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                guard let waiter = state.waiters.removeValue(forKey: id) else {
                    // Not registered yet: registration will see this. (Already resumed: nothing to do.)
                    if state.result == nil { state.cancelled.insert(id) }
                    return nil as CheckedContinuation<Void, any Error>?
                }
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}

extension ThrowingTaskGroup where ChildTaskResult == Void, Failure == any Error {
    /// Adds `client.run()` so that the client counts as running before this returns.
    /// postgres-nio logs a warning for every lease asked for before its `run()` began ("run()
    /// hasn't been called yet"). A store asks for one at once (its schema migration), and a child
    /// task started the usual way has seldom begun by then, so `unrace serve` and every
    /// `unrace work` warned at each start. An immediate task runs `run()` up to its first
    /// suspension, which comes after it marks the client running. Built with a compiler older
    /// than Swift 6.2, or run before macOS 26, it is added as a usual child task, and a start may
    /// still log that warning (harmless: the lease waits for the pool either way).
    package mutating func addRunning(_ client: PostgresClient) {
        #if compiler(>=6.2)
        if #available(macOS 26, iOS 26, tvOS 26, watchOS 26, visionOS 26, *) {
            addImmediateTask { await client.run() }
            return
        }
        #endif
        addTask { await client.run() }
    }
}
