import FluentKit
import FluentPostgresDriver
import Logging
import NIOCore
import NIOPosix
import Testing
import Unrace
import UnraceFluent

/// Where a PostgreSQL store finds its tables, and what its migration decides before any DDL.
@Suite("Schema placement", .timeLimit(.minutes(10)))
struct SchemaPlacementTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Opens a Fluent store on the test database with `searchPath` and extra startup parameters,
    /// runs `body` with it (or with its error), and shuts its pool down.
    static func withFluentStore<T>(
        searchPath: [String],
        parameters: [(String, String)] = [],
        _ body: (Result<FluentStore, any Error>) async throws -> T
    ) async throws -> T {
        var configuration = try TestPostgres.fluentConfiguration()
        configuration.searchPath = searchPath
        configuration.coreConfiguration.options.additionalStartupParameters += parameters
        let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
        databases.use(.postgres(configuration: configuration), as: .psql)
        let opened: Result<FluentStore, any Error>
        do { opened = .success(try await FluentStore(databases: databases, logger: quiet)) } catch { opened = .failure(error) }
        let result: Result<T, any Error>
        do { result = .success(try await body(opened)) } catch { result = .failure(error) }
        await databases.shutdownAsync()
        return try result.get()
    }

    @Test(
        "a store whose search path finds Unrace's tables in a later schema refuses to open (invalid_configuration) instead of using another tenant's tables or creating its own beside them",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func tablesInAnotherSchema() async throws {
        let (a, b) = (uniqueName("ta"), uniqueName("tb"))
        try await TestPostgres.execute("CREATE SCHEMA \(a)")
        try await TestPostgres.execute("CREATE SCHEMA \(b)")
        defer { Task { try? await TestPostgres.execute("DROP SCHEMA \(a), \(b) CASCADE") } }
        try await Self.withFluentStore(searchPath: [a]) { opened in
            let store = try opened.get()
            let operations = try Operations(store: store, logger: Self.quiet)
            _ = try await operations.perform(key: "k") { _ in 1 }
        }
        try await Self.withFluentStore(searchPath: [b, a]) { opened in
            #expect(throws: UnraceError.self) { try opened.get() }
            if case .failure(let error as UnraceError) = opened {
                #expect(error.code == .invalidConfiguration && (error.detail ?? "").contains(a), "\(error)")
            }
        }
        // Nothing was created in b.
        let created = try await Self.withFluentStore(searchPath: [a]) { opened in
            try await countRows(try opened.get(), "pg_catalog.pg_tables WHERE schemaname = '\(b)'")
        }
        #expect(created == 0)
        // b alone on the path is a store of its own, empty.
        try await Self.withFluentStore(searchPath: [b]) { opened in
            let operations = try Operations(store: try opened.get(), logger: Self.quiet)
            let status = try await operations.status(of: "k")
            #expect(status == .notStarted)
        }
    }

    @Test(
        "a read-only database written by a newer Unrace is refused as schema_too_new, not as database_read_only (which a caller would retry forever)",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func newerSchemaReadOnly() async throws {
        let schema = uniqueName("nr")
        try await TestPostgres.execute("CREATE SCHEMA \(schema)")
        defer { Task { try? await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE") } }
        try await Self.withFluentStore(searchPath: [schema]) { opened in _ = try opened.get() }
        try await TestPostgres.execute("INSERT INTO \(schema).unrace_schema_migrations (version, applied_at) VALUES (999, 0)")
        try await Self.withFluentStore(searchPath: [schema], parameters: [("default_transaction_read_only", "on")]) { opened in
            guard case .failure(let error as UnraceError) = opened else {
                Issue.record("opened: \(opened)")
                return
            }
            #expect(error.code == .schemaTooNew, "\(error)")
        }
    }
}
