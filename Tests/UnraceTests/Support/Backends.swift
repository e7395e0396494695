import Foundation
import PostgresNIO
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite
@_exported import UnraceSimulation

/// The real SQL backends every integration test runs on.
enum SQLBackend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case sqlite, postgres
    var testDescription: String { rawValue }
}

/// Where the test PostgreSQL is. `scripts/test` starts one and exports its URL. Without it, the
/// PostgreSQL tests still run, and fail with a clear message, when `CI` is set; a developer
/// running bare `swift test` sees them skipped.
enum TestPostgres {
    /// The server's URL, with a `connect_timeout` of 60 s unless it names one: the whole suite at
    /// once on two cores (child processes included) has taken over the default 10 s to complete
    /// a loopback connection. The timeout itself is tested on its own (`PostgresURLTests`).
    static let url = ProcessInfo.processInfo.environment["UNRACE_TEST_POSTGRES_URL"].map { url in
        url.contains("connect_timeout=") ? url : adding("connect_timeout=60", to: url)
    }
    static let required = url != nil || ProcessInfo.processInfo.environment["CI"] != nil

    /// `url` with the query item `item` (`name=value`) added.
    static func adding(_ item: String, to url: String) -> String {
        url + (url.contains("?") ? "&" : "?") + item
    }

    /// `url` with its `connect_timeout` set to `seconds` (added or replaced): for the tests of a
    /// step's wait for a connection, which lasts the longer of 10 s and the connect timeout.
    static func url(_ url: String, connectTimeout seconds: Int) -> String {
        var components = URLComponents(string: url)!
        components.queryItems =
            (components.queryItems ?? []).filter { $0.name != "connect_timeout" }
            + [URLQueryItem(name: "connect_timeout", value: "\(seconds)")]
        return components.string!
    }

    /// The test server's URL with the query item `item` added.
    static func requireURL(adding item: String) throws -> String {
        adding(item, to: try requireURL())
    }

    /// Runs one statement on the test database, outside any store.
    /// Bounded: a schema's `DROP` waiting on a session a failed test left behind fails the test
    /// after two minutes, naming the lock, instead of hanging the suite.
    static func execute(_ sql: String) async throws {
        var configuration = try PostgresStore.clientConfiguration(url: try requireURL())
        configuration.options.additionalStartupParameters += [("lock_timeout", "120000"), ("statement_timeout", "180000")]
        let client = PostgresClient(configuration: configuration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await client.query(PostgresQuery(unsafeSQL: sql))
        }
    }

    static func requireURL() throws -> String {
        guard let url else {
            Issue.record("UNRACE_TEST_POSTGRES_URL is not set: run the suite with scripts/test, which starts PostgreSQL")
            throw CancellationError()
        }
        return url
    }
}

/// The backends a test runs on: SQLite always; PostgreSQL when configured (or required).
let sqlBackends: [SQLBackend] = TestPostgres.required ? [.sqlite, .postgres] : [.sqlite]

/// `count` copies of the ASCII character `character`, made at memory speed.
///
/// `String(repeating:count:)` appends one copy at a time, and a debug build spends seconds on
/// 64 MiB of them, holding one of the task pool's threads (two on this machine) for all that time:
/// every other test's timers and I/O wait behind it.
func repeatedASCII(_ character: Character, count: Int) -> String {
    guard count > 0, let byte = character.asciiValue else { return "" }
    return String(unsafeUninitializedCapacity: count) { buffer in
        _ = memset(buffer.baseAddress!, Int32(byte), count)
        return count
    }
}

/// A fresh, unique name for a test's tables and scopes, so tests sharing one PostgreSQL never
/// see each other's rows.
func uniqueName(_ prefix: String) -> String {
    "\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
}

/// Runs `body` with a fresh store of the backend: a new SQLite file in a temporary folder, or a
/// client of the test PostgreSQL.
func withStore<T: Sendable>(
    _ backend: SQLBackend,
    _ body: (any SQLStore, _ location: String) async throws -> T
) async throws -> T {
    switch backend {
    case .sqlite:
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-test"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("test.sqlite").path
        let store = try await SQLiteStore(path: path)
        return try await body(store, path)
    case .postgres:
        // Each test gets a schema of its own in the test database: its own Unrace tables, so
        // ledger totals, sweepers and purges never see another test's rows. Child processes
        // reach the same schema through the URL.
        let schema = uniqueName("t")
        let url = try TestPostgres.requireURL()
        try await TestPostgres.execute("CREATE SCHEMA \(schema)")
        let location = TestPostgres.adding("search_path=\(schema)", to: url)
        do {
            // A loaded test machine (every suite at once on two cores) can take long over a step; the
            // default step timeout (30 s) is tested on its own.
            let result = try await PostgresStore.withStore(url: location, maximumConnections: 16, stepTimeout: .seconds(300)) { store in
                try await body(store, location)
            }
            try await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE")
            return result
        } catch {
            try? await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE")
            throw error
        }
    }
}

/// Creates a business table `name (id TEXT PRIMARY KEY, worker TEXT)` for effects.
func createEffectsTable<S: SQLStore>(_ store: S, _ name: String) async throws {
    _ = try await store.withTransaction { tx in
        try await tx.execute("CREATE TABLE \(name) (id TEXT NOT NULL, worker TEXT NOT NULL, seq INTEGER NOT NULL)")
    }
}

/// How many rows a business table holds for `id` (or in total).
func countRows<S: SQLStore>(_ store: S, _ table: String, id: String? = nil) async throws -> Int {
    try await store.withTransaction { tx in
        let rows = try await tx.query(
            "SELECT COUNT(*) AS n FROM \(table)" + (id == nil ? "" : " WHERE id = ?"),
            id.map { [SQLValue.text($0)] } ?? []
        )
        return Int(try rows[0].int64("n"))
    }
}

/// Every store a guarantee is tested on: the in-memory reference, the real SQL backends, and the
/// same SQL on an application's Fluent database (both Fluent drivers).
enum Backend: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, sqlite, postgres, fluentSQLite, fluentPostgres
    var testDescription: String { rawValue }
}

/// The stores a test runs on: memory and SQLite always; PostgreSQL when configured (or required).
let allBackends: [Backend] = [.memory, .sqlite] + (TestPostgres.required ? [.postgres] : [])

/// Those and the same SQL on a Fluent database, through both Fluent drivers: the store-level
/// suites (decide-before-run, names, cancellation, the review's defects) run on these.
let storeBackends: [Backend] = allBackends + [.fluentSQLite] + (TestPostgres.required ? [.fluentPostgres] : [])

/// Runs `body` with a fresh store of the backend.
func withAnyStore<T: Sendable>(_ backend: Backend, _ body: (any Store) async throws -> T) async throws -> T {
    switch backend {
    case .memory: return try await body(MemoryStore())
    case .sqlite: return try await withStore(.sqlite) { store, _ in try await body(store) }
    case .postgres: return try await withStore(.postgres) { store, _ in try await body(store) }
    case .fluentSQLite: return try await withFluentStore(.sqlite) { store, _ in try await body(store) }
    case .fluentPostgres: return try await withFluentStore(.postgres) { store, _ in try await body(store) }
    }
}
