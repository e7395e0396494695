public import Unrace
public import UnraceCore
public import PostgresNIO
import Foundation
import Logging

/// The ``Store`` for many processes and machines sharing one PostgreSQL.
///
/// PostgreSQL is the coordination point: the primary key on `(scope, key)`, row locks
/// (`SELECT … FOR UPDATE`) and conditional writes do the work; no in-process lock is involved, so
/// any number of processes may share the database. Statements stay within what
/// Postgres-compatible distributed SQL engines accept, and rows shard by `(scope, key)`.
public final class PostgresStore: SQLStore {
    /// The handle a step's body writes through.
    public typealias Transaction = PostgresTransaction

    /// How many times a step is retried after a serialization failure or deadlock
    /// (SQLSTATE 40001, 40P01) or a lost insert race, before ``UnraceError/Code/retryLimitReached``.
    public static let retryCountMax = 8

    /// The client the store runs its steps on.
    public let client: PostgresClient
    /// The backend's short name.
    public var backendName: String { "postgres" }
    /// The SQL flavour of this store.
    public var dialect: SQLDialect { .postgres }

    private let logger: Logger
    let table = OperationTable(lockClause: SQLDialect.postgres.rowLockClause)

    /// Creates a store on a client that the caller runs (`client.run()` in a long-lived task or a
    /// `ServiceGroup`), and migrates the schema. Migrations from concurrent processes serialise on
    /// an advisory lock.
    public init(client: PostgresClient, logger: Logger = Logger(label: "unrace.postgres")) async throws {
        self.client = client
        self.logger = logger
        _ = try await transaction { tx in
            try await tx.execute("SELECT pg_advisory_xact_lock(7220001)")
            return try await Self.migrations.apply(tx, now: SystemWallClock().now())
        }
    }

    /// Connects to `url`, runs the client for the duration of `body`, and shuts it down after.
    ///
    /// - Parameters:
    ///   - url: `postgres://user[:password]@host[:port]/database`, optionally with
    ///     `?sslmode=disable|require`.
    ///   - maximumConnections: the pool's size (1 to 500). Default 20.
    /// - Throws: ``UnraceError/Code/invalidDatabaseURL`` for a malformed URL;
    ///   ``UnraceError/Code/storeUnavailable`` when the server cannot be reached.
    public static func withStore<T: Sendable>(
        url: String,
        maximumConnections: Int = 20,
        logger: Logger = Logger(label: "unrace.postgres"),
        _ body: (PostgresStore) async throws -> T
    ) async throws -> T {
        var configuration = try clientConfiguration(url: url)
        guard (1...500).contains(maximumConnections) else {
            throw UnraceError(.invalidConfiguration, "maximumConnections must be between 1 and 500")
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(5)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            let store = try await PostgresStore(client: client, logger: logger)
            return try await body(store)
        }
    }

    /// Parses a `postgres://` URL into a client configuration.
    public static func clientConfiguration(url: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: url),
            let scheme = components.scheme, scheme == "postgres" || scheme == "postgresql",
            let host = components.host, !host.isEmpty
        else {
            throw UnraceError(.invalidDatabaseURL, "expected postgres://user[:password]@host[:port]/database")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let sslmode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        let tls: PostgresClient.Configuration.TLS
        switch sslmode {
        case "disable": tls = .disable
        case "require": tls = .require(.makeClientConfiguration())
        default: throw UnraceError(.invalidDatabaseURL, "sslmode must be disable or require")
        }
        return PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user ?? "postgres",
            password: components.password, database: database.isEmpty ? nil : database, tls: tls
        )
    }

    static let migrations = SchemaMigrations([
        .init(version: 1, statements: [
            """
            CREATE TABLE unrace_operations (
              scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint BYTEA NOT NULL,
              state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'released')),
              token BIGINT NOT NULL CHECK (token >= 1), holder TEXT NOT NULL, lease_until BIGINT NOT NULL,
              recovery_point BYTEA, outcome BYTEA, created_at BIGINT NOT NULL, completed_at BIGINT, expires_at BIGINT,
              PRIMARY KEY (scope, key)
            )
            """,
            "CREATE INDEX unrace_operations_expiry ON unrace_operations (expires_at) WHERE expires_at IS NOT NULL",
        ]),
        .init(version: 2, statements: InboxSchema.statements(blob: "BYTEA")),
        .init(version: 3, statements: SQLLostUpdateSteps.statements(blob: "BYTEA", keyedTable: "")),
        .init(version: 4, statements: SQLLedgerSteps.statements(keyedTable: "")),
    ])

    // MARK: Store

    /// Claims the key and, if acquired, runs `body` and stores its completion, in one transaction. See ``Store/performOnce(_:retention:_:)``.
    public func performOnce(
        _ request: ClaimRequest,
        retention: Duration,
        _ body: (PostgresTransaction, FencingToken) async throws -> Completion
    ) async throws -> PerformStep {
        // Fast path, for the common case of a new key: run the body, then insert the completed
        // record in the same transaction, one statement that adds no commit. A concurrent
        // duplicate's insert waits on the primary key until this transaction ends.
        if let fresh = ClaimDecision.insert.acquiredRecord(for: request, existing: nil) {
            do {
                return try await transaction { tx in
                    let completion = try await body(tx, fresh.token)
                    let record = completion.apply(to: fresh, now: request.now, retention: retention)
                    let inserted = try await PostgresTransaction.mapErrors {
                        var inserted = false
                        let statement = InsertOperationIfAbsent(values: OperationTable.values(record))
                        for try await _ in try await tx.connection.execute(statement, logger: logger) { inserted = true }
                        return inserted
                    }
                    guard inserted else { throw KeyExists() }
                    return .performed(record)
                }
            } catch is KeyExists {
                // The key has a record: fall through to the locking path, which decides on it.
            } catch let error as UnraceError where error.code == .constraintViolation {
                // The body hit a business unique key that a committed duplicate wrote first;
                // the locking path will find that duplicate's record and replay it.
            }
        }
        return try await transaction { tx in try await table.performOnce(tx, request, retention: retention, body) }
    }

    /// Claims the key for a lease, in one transaction. See ``Store/claim(_:)``.
    public func claim(_ request: ClaimRequest) async throws -> ClaimStep {
        try await transaction { tx in try await table.claim(tx, request) }
    }

    /// Runs `body` and applies `write` if `token` is current, in one transaction; throws `fenced` otherwise. See ``Store/write(_:scope:key:token:now:retention:_:)``.
    public func write(
        _ write: HolderWrite, scope: Scope, key: OperationKey, token: FencingToken, now: Timestamp,
        retention: Duration, _ body: (PostgresTransaction) async throws -> Void
    ) async throws -> OperationRecord {
        try await transaction { tx in
            try await table.write(tx, write, scope: scope, key: key, token: token, now: now, retention: retention, body)
        }
    }

    /// The stored record of a key, if any.
    public func record(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await client.withConnection { connection in
            try await table.fetch(PostgresTransaction(connection: connection, logger: logger), scope: scope, key: key, lock: false)
        }
    }

    /// Deletes at most `limit` records whose retention ended before `now`.
    public func purgeExpired(now: Timestamp, limit: Int) async throws -> Int {
        try await transaction { tx in try await table.purgeExpired(tx, now: now, limit: limit) }
    }

    /// Runs `body` in a transaction with no operation record.
    public func withTransaction<T: Sendable>(_ body: (PostgresTransaction) async throws -> T) async throws -> T {
        try await transaction(body)
    }

    private struct KeyExists: Error {}

    /// Runs `body` between `BEGIN` and `COMMIT` on a pooled connection, rolling back if it throws
    /// and retrying (bounded) on serialization failures, deadlocks and lost insert races.
    func transaction<T: Sendable>(_ body: (PostgresTransaction) async throws -> T) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            do {
                return try await PostgresTransaction.mapErrors {
                    try await client.withConnection { connection in
                        let tx = PostgresTransaction(connection: connection, logger: logger)
                        try await tx.execute("BEGIN")
                        do {
                            let result = try await body(tx)
                            try await tx.execute("COMMIT")
                            return result
                        } catch {
                            do { try await tx.execute("ROLLBACK") } catch {
                                logger.debug("rollback after a failed step also failed", metadata: ["error": "\(error)"])
                            }
                            throw error
                        }
                    }
                }
            } catch let error as UnraceError where Self.isTransient(error) {
                guard attempt < Self.retryCountMax else {
                    throw UnraceError(
                        .retryLimitReached, "a step kept conflicting with concurrent transactions",
                        detail: "\(attempt) attempts; last SQLSTATE \(error.sqlState ?? "?")", underlying: error
                    )
                }
            }
        }
    }

    /// Serialization failures, deadlocks, and a unique violation on one of Unrace's own tables
    /// (two steps inserting the same key or stream at once): retrying the whole step resolves each.
    private static func isTransient(_ error: UnraceError) -> Bool {
        switch error.sqlState {
        case "40001", "40P01": return true
        case "23505": return (error.underlying as? PSQLError)?.serverInfo?[.tableName]?.hasPrefix("unrace_") ?? false
        default: return false
        }
    }
}
