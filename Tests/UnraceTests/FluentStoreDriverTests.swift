import FluentKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLKit
import Testing
import Unrace
import UnracePostgres

@testable import UnraceFluent

@Suite("FluentStore drivers")
struct FluentStoreDriverTests {
    @Test(
        "a step that gets no connection from a full Fluent pool within its timeout fails with store_unavailable, retryable",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func fullPool() async throws {
        let outcome = try await Self.withOneConnectionHeld(poolTimeout: .seconds(1)) { store in
            do {
                try await store.withTransaction { _ in }
                return "ran"
            } catch let error as UnraceError {
                return "\(error.code)\(error.isRetryable ? " retryable" : "")"
            } catch {
                return "\(type(of: error))"
            }
        }
        #expect(outcome == "store_unavailable retryable")
    }

    /// ErrorsAndLimits: "Cancelling the task of any call rolls its step back before the call
    /// returns (`CancellationError`)" — also while it waits for one of Fluent's pooled
    /// connections, whose wait FluentKit cannot cancel (a 60 s pool timeout here).
    @Test(
        "a caller cancelled while it waits for a full Fluent pool gets CancellationError at once, not the pool's timeout",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func cancelledPoolWait() async throws {
        let outcome = try await Self.withOneConnectionHeld(poolTimeout: .seconds(60)) { store in
            let waiting = Task { try await store.withTransaction { _ in } }
            // Time for the second caller to queue for the one connection; were it cancelled
            // before it asked, it would get CancellationError too.
            try await Task.sleep(for: .milliseconds(200))
            let started = ContinuousClock.now
            waiting.cancel()
            let result = try await within(.seconds(60), "the cancelled wait") { await waiting.result }
            #expect(ContinuousClock.now - started < .seconds(10), "not the pool's 60 s timeout")
            switch result {
            case .success: return "ran"
            case .failure(let error): return error is CancellationError ? "cancelled" : "\(error)"
            }
        }
        #expect(outcome == "cancelled")
    }

    /// A `FluentStore` on a Fluent PostgreSQL pool of one event loop with one connection, which
    /// a step holds while `body` runs; the step then lets go, and the next step must run.
    static func withOneConnectionHeld(
        poolTimeout: TimeAmount,
        _ body: (FluentStore) async throws -> String
    ) async throws -> String {
        let schema = uniqueName("fp")
        try await TestPostgres.execute("CREATE SCHEMA \(schema)")
        var configuration = try TestPostgres.fluentConfiguration()
        configuration.searchPath = [schema]
        let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let databases = Databases(threadPool: NIOThreadPool.singleton, on: loop)
        databases.use(.postgres(configuration: configuration, maxConnectionsPerEventLoop: 1, connectionPoolTimeout: poolTimeout), as: .psql)
        var outcome: Result<String, any Error> = .success("not run")
        let release = Latch()
        do {
            let store = try await FluentStore(databases: databases)
            let holding = Latch()
            let holder = Task {
                try await store.withTransaction { _ in
                    holding.open()
                    await release.wait()
                }
            }
            await holding.wait()
            outcome = .success(try await body(store))
            release.open()
            try await holder.value
            try await store.withTransaction { tx in try await tx.execute("SELECT 1") }
        } catch {
            release.open()
            outcome = .failure(error)
        }
        await databases.shutdownAsync()
        try await loop.shutdownGracefully()
        try await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE")
        return try outcome.get()
    }

    @Test(
        "on PostgreSQL a Fluent statement running past the step timeout is cut off: store_unavailable, nothing committed",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func fluentStatementPastTheTimeout() async throws {
        try await withFluentStore(.postgres) { setUp, database in
            // Set up with the long-timeout store: on a loaded machine a CREATE can outlast 1 s.
            try await setUp.withTransaction { tx in try await tx.execute("CREATE TABLE slow (id TEXT PRIMARY KEY)") }
            let store = try await FluentStore(database: database, stepTimeout: .seconds(1))
            let started = ContinuousClock.now
            let code = try await within(.seconds(120), "a Fluent statement past the step timeout") {
                do {
                    try await store.withTransaction { tx in
                        try await (tx.fluent as! any SQLDatabase).raw("INSERT INTO slow (id) VALUES ('a')").run()
                        try await (tx.fluent as! any SQLDatabase).raw("SELECT pg_sleep(600)").run()
                    }
                    return "finished"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(code == "store_unavailable")
            #expect(ContinuousClock.now - started < .seconds(90), "cut off, not left to run its 600 s")
            #expect(try await countRows(setUp, "slow") == 0)
        }
    }

    @Test(
        "on PostgreSQL a statement of Unrace's answered after the step's close was decided fails the step: the body sends no Fluent statement the close could overtake",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func answeredWhileClosing() async throws {
        try await withFluentStore(.postgres) { store, _ in
            let wentOn = Latch()
            let code = try await within(.seconds(60), "a step whose close was decided mid-statement") {
                do {
                    try await store.withTransaction { tx in
                        guard case .postgres(let postgres) = tx.sql else { return }
                        // The step timeout fires while this statement is in flight, and the answer
                        // comes before the close the stop scheduled (10 ms later): the race the
                        // CI run met when BEGIN and SET LOCAL outlasted a 1 s step on a loaded box.
                        try await postgres.stepGuard.send { postgres.stepGuard.stop(.timedOut) }
                        wentOn.open()
                        try await (tx.fluent as! any SQLDatabase).raw("SELECT 1").run()
                    }
                    return "finished"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(code == "store_unavailable")
            #expect(!wentOn.isOpen, "the body was handed an answer on a connection about to close, and went on")
        }
    }

    @Test(
        "on PostgreSQL a Fluent statement on a connection lost mid-step fails the step at once with store_unavailable, never waits forever",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func fluentStatementOnALostConnection() async throws {
        try await withFluentStore(.postgres) { store, _ in
            let started = ContinuousClock.now
            let code = try await within(.seconds(60), "a Fluent statement after the connection was lost") {
                do {
                    try await store.withTransaction { tx in
                        guard case .postgres(let postgres) = tx.sql else { return }
                        let sql = tx.fluent as! any SQLDatabase
                        try await sql.raw("SELECT 1").run()
                        // The server goes between two statements (a failover, a restart).
                        try await postgres.connection.close().get()
                        try await sql.raw("SELECT 2").run()
                    }
                    return "finished"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(code == "store_unavailable")
            #expect(ContinuousClock.now - started < .seconds(30))
            // The next step runs on another of the pool's connections.
            #expect(try await store.withTransaction { tx in try await tx.query("SELECT 1 AS one").first?["one"] } == .integer(1))
        }
    }

    @Test(
        "on PostgreSQL a statement written after the server ended the session is given up about 100 ms after the close, not at the step timeout",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func statementAfterTheServerClosed() async throws {
        try await withFluentStore(.postgres) { store, _ in
            let started = ContinuousClock.now
            let code = try await within(.seconds(60), "a statement written after the server closed the connection") {
                do {
                    try await store.withTransaction { tx in
                        guard case .postgres(let postgres) = tx.sql else { return }
                        guard case .integer(let pid)? = try await tx.query("SELECT pg_backend_pid() AS pid").first?["pid"] else { return }
                        try await postgres.stepGuard.send {
                            // Past the guard with the connection open; the server ends the session
                            // before the statement is written (a proxy cutting it, a failover).
                            try await TestPostgres.execute("SELECT pg_terminate_backend(\(pid))")
                            try await postgres.connection.closeFuture.get()
                            _ = try await postgres.connection.query("SELECT 1", logger: Logger(label: "test")).collect()
                        }
                    }
                    return "finished"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(code == "store_unavailable")
            // Not at the step timeout (this store's is 300 s).
            #expect(ContinuousClock.now - started < .seconds(10))
            #expect(try await store.withTransaction { tx in try await tx.query("SELECT 1 AS one").first?["one"] } == .integer(1))
        }
    }

    @Test(
        "on PostgreSQL a Fluent model query (the future-based path) on a lost connection fails at once with store_unavailable",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func fluentModelOnALostConnection() async throws {
        try await withFluentStore(.postgres) { store, database in
            try await FluentStoreTests.migrate(database)
            let code = try await within(.seconds(60), "a Fluent model query after the connection was lost") {
                do {
                    return try await store.withTransaction { tx in
                        guard case .postgres(let postgres) = tx.sql else { return "not postgres" }
                        _ = try await ContractOrder.query(on: tx.fluent).count()
                        try await postgres.connection.close().get()
                        _ = try await ContractOrder.query(on: tx.fluent).count()
                        return "finished"
                    }
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(code == "store_unavailable")
        }
    }

    @Test(
        "a Fluent database kept past its step sends nothing: a model write and raw SQL fail with step_ended, nothing is written",
        arguments: FluentStoreTests.drivers
    )
    func fluentDatabasePastItsStep(_ driver: SQLBackend) async throws {
        try await withFluentStore(driver) { store, database in
            try await FluentStoreTests.migrate(database)
            let kept = try await store.withTransaction { tx in tx.fluent }
            let late = try await within(.seconds(60), "Fluent statements after their step") {
                var codes: [String] = []
                do {
                    try await ContractOrder(id: "late", sku: "widget", quantity: 1).create(on: kept)
                    codes.append("sent")
                } catch let error as UnraceError { codes.append(error.code.rawValue) }
                do {
                    try await (kept as! any SQLDatabase).raw("INSERT INTO contract_orders (id, sku, quantity) VALUES ('raw', 'widget', 1)")
                        .run()
                    codes.append("sent")
                } catch let error as UnraceError { codes.append(error.code.rawValue) }
                return codes
            }
            #expect(late == ["step_ended", "step_ended"])
            #expect(try await ContractOrder.query(on: database).count() == 0)
        }
    }

    @Test(
        "on PostgreSQL a caller cancelled while its Fluent statement runs is released at once with CancellationError, not at the statement's end",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func cancelledDuringAFluentStatement() async throws {
        try await withFluentStore(.postgres) { store, _ in
            let marker = uniqueName("fluent_cancel")
            let task = Task {
                try await store.withTransaction { tx in
                    try await (tx.fluent as! any SQLDatabase).raw("SELECT pg_sleep(600) AS \(unsafeRaw: marker)").run()
                }
            }
            let running = "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%\(marker)%' AND pid <> pg_backend_pid()"
            // The statement is on the server (its step timeout, and statement_timeout, are 300 s).
            let pid = try await within(.seconds(60), "the Fluent statement running on the server") {
                while true {
                    if let pid = try await store.withTransaction({ tx in try await tx.query(running).first?["pid"] }) { return pid }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            guard case .integer(let backend) = pid else {
                Issue.record("pg_stat_activity gave no pid")
                return
            }
            defer {
                // The server's sleep goes too, whatever the test found.
                Task { try? await TestPostgres.execute("SELECT pg_terminate_backend(\(backend))") }
            }
            let started = ContinuousClock.now
            task.cancel()
            let outcome = try await within(.seconds(60), "the cancelled caller") {
                do {
                    try await task.value
                    return "finished"
                } catch is CancellationError {
                    return "cancelled"
                } catch let error as UnraceError { return "\(error.code)" }
            }
            #expect(outcome == "cancelled")
            #expect(ContinuousClock.now - started < .seconds(30))
        }
    }

    @Test(
        "a step after the application's databases were shut down fails with store_unavailable, never traps",
        arguments: FluentStoreTests.drivers
    )
    func stepAfterShutdown(_ driver: SQLBackend) async throws {
        try await withFluentStore(driver) { _, database in
            // A store on an application's Databases of its own, shut down under it as an
            // application stops with a request still to serve.
            let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
            databases.use(DatabaseConfigurationFactory { database.context.configuration }, as: .init(string: "app"), isDefault: true)
            let store = try await FluentStore(databases: databases)
            await databases.shutdownAsync()
            let error = await #expect(throws: UnraceError.self) {
                try await store.withTransaction { tx in try await tx.execute("SELECT 1") }
            }
            #expect(error?.code == .storeUnavailable)
        }
    }

    @Test(
        "on SQLite a write step that meets another connection's write lock fails with store_unavailable after the step timeout, not spinning forever"
    )
    func lockedFile() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("fluent-locked"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("fluent.sqlite").path
        let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
        databases.use(.sqlite(.file(path)), as: .sqlite)
        var logger = Logger(label: "test.fluent")
        logger.logLevel = .critical
        do {
            let store = try await FluentStore(databases: databases, stepTimeout: .seconds(1), logger: logger)
            // Another process's writer, as far as SQLite can tell: a connection of its own that
            // holds the file's write lock.
            let other = try await SQLiteConnection.open(storage: .file(path: path))
            _ = try await other.query("BEGIN IMMEDIATE")
            let code: String
            do {
                code = try await within(.seconds(60), "a Fluent write step on a locked file") {
                    do {
                        try await store.withTransaction { tx in try await tx.execute("SELECT 1") }
                        return "finished"
                    } catch let error as UnraceError { return "\(error.code)" }
                }
            } catch {
                _ = try? await other.query("COMMIT")
                try? await other.close()
                throw error
            }
            _ = try await other.query("COMMIT")
            try await other.close()
            #expect(code == "store_unavailable")
            // Once the lock is gone, the next write step runs.
            #expect(try await store.withTransaction { tx in try await tx.query("SELECT 1 AS one").first?["one"] } == .integer(1))
        } catch {
            await databases.shutdownAsync()
            throw error
        }
        await databases.shutdownAsync()
    }

    @Test(
        "FluentPostgresDriver's PostgresClient configuration is refused with unsupported_database, naming the pooled configuration to use",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func postgresClientConfigurationIsRefused() async throws {
        let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        databases.use(
            .postgres(configuration: try PostgresStore.clientConfiguration(url: try TestPostgres.requireURL()), logger: quiet),
            as: .psql
        )
        let error = await #expect(throws: UnraceError.self) {
            _ = try await FluentStore(databases: databases)
        }
        await databases.shutdownAsync()
        #expect(error?.code == .unsupportedDatabase)
        #expect(error?.detail?.contains("SQLPostgresConfiguration") == true)
    }

    @Test(
        "a step timeout outside 1 s to 1 h is refused with invalid_configuration",
        arguments: [Duration.milliseconds(999), .seconds(3_601)]
    )
    func stepTimeoutBounds(_ timeout: Duration) async throws {
        try await withFluentStore(.sqlite) { _, database in
            let error = await #expect(throws: UnraceError.self) {
                _ = try await FluentStore(database: database, stepTimeout: timeout)
            }
            #expect(error?.code == .invalidConfiguration)
        }
    }
}
