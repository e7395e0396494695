import FluentKit
import FluentPostgresDriver
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import Unrace
import UnraceFluent
import UnracePostgres
import UnraceSQL
import UnraceShop

/// Replicas of `unrace serve` started at the same moment on a fresh PostgreSQL database (a
/// rolling deploy): every one sets up and serves; none dies on the catalog race of concurrent
/// `CREATE TABLE IF NOT EXISTS`.
// Serialized: two of these tests hold the schema locks across an await of their own (an earlier
// release's exclusive key; a running migration's shared one), and PostgreSQL queues a shared
// request behind a waiting exclusive one — run together, each would wait for the other's latch.
@Suite("Replicas started together", .serialized, .timeLimit(.minutes(10)))
struct ReplicaStartupTests {
    @Test(
        "three shops on separate connections set up at the same instant on a fresh schema, ten times: all succeed",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func threeReplicas() async throws {
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        for _ in 1...10 {
            try await withStore(.postgres) { _, location in
                try await PostgresStore.withStore(url: location, logger: quiet) { a in
                    try await PostgresStore.withStore(url: location, logger: quiet) { b in
                        try await PostgresStore.withStore(url: location, logger: quiet) { c in
                            let barrier = Barrier(parties: 3)
                            let failures = try await withThrowingTaskGroup(of: String?.self) { group in
                                for store in [a, b, c] {
                                    group.addTask {
                                        // Arrives whatever the shop's set-up did.
                                        let made = await outcome { try Shop(store: store, logger: quiet) }
                                        await barrier.arriveAndWait()
                                        do {
                                            try await made.get().setUp()
                                            return nil
                                        } catch { return "\(error)" }
                                    }
                                }
                                return try await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
                            }
                            #expect(failures.isEmpty)
                            #expect(try await countRows(a, "shop_stock") == 2)
                        }
                    }
                }
            }
        }
    }

    @Test(
        "three Fluent stores on separate pools migrate a fresh schema at the same instant, ten times: all succeed",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func threeFluentReplicas() async throws {
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        for _ in 1...10 {
            let schema = uniqueName("fr")
            try await TestPostgres.execute("CREATE SCHEMA \(schema)")
            var configuration = try TestPostgres.fluentConfiguration()
            configuration.searchPath = [schema]
            let pools = (0..<3).map { _ in Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton) }
            for databases in pools { databases.use(.postgres(configuration: configuration), as: .psql) }
            let barrier = Barrier(parties: 3)
            let failures = await withTaskGroup(of: String?.self) { group in
                for databases in pools {
                    group.addTask {
                        await barrier.arriveAndWait()
                        do {
                            _ = try await FluentStore(databases: databases, logger: quiet)
                            return nil
                        } catch { return "\(error)" }
                    }
                }
                return await group.reduce(into: [String]()) { if let failure = $1 { $0.append(failure) } }
            }
            for databases in pools { await databases.shutdownAsync() }
            try await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE")
            #expect(failures.isEmpty)
        }
    }

    @Test(
        "a migration waits for the database-wide schema lock earlier releases take, so replicas of both exclude each other in a rolling deploy",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func earlierReleasesLock() async throws {
        try await withStore(.postgres) { store, _ in
            let held = Latch()
            let release = Latch()
            // An earlier release's replica, migrating: it holds pg_advisory_xact_lock(7220001).
            let holder = Task {
                try await store.withTransaction { tx in
                    try await tx.execute("SELECT pg_advisory_xact_lock(7220001)")
                    held.open()
                    await release.wait()
                }
            }
            await held.wait()
            // Whatever happens below, the lock is given back: every migration waits on it.
            let schema = uniqueName("rl")
            let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
            let finished = Latch()
            var migration: Task<Void, any Error>?
            let waiting: Result<Bool, any Error>
            do {
                try await TestPostgres.execute("CREATE SCHEMA \(schema)")
                var configuration = try TestPostgres.fluentConfiguration()
                configuration.searchPath = [schema]
                databases.use(.postgres(configuration: configuration), as: .psql)
                migration = Task {
                    defer { finished.open() }
                    _ = try await FluentStore(
                        databases: databases,
                        logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
                    )
                }
                // The new release's migration is seen waiting on the database-wide key (the
                // bigint form: classid 0, objid the key, objsubid 1), not finishing past it.
                waiting = .success(
                    try await within(.seconds(60), "the migration waiting on the earlier release's lock") {
                        while try await store.withTransaction({ tx in
                            try await tx.query(
                                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = 0 AND objid = 7220001 AND objsubid = 1 AND NOT granted"
                            )
                        }).first?["n"] == .integer(0) {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                        return !finished.isOpen
                    }
                )
            } catch {
                waiting = .failure(error)
            }
            release.open()
            let holderResult = await holder.result
            let migrationResult = await migration?.result
            await databases.shutdownAsync()
            try? await TestPostgres.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            #expect(try waiting.get(), "the migration went past a lock an earlier release holds")
            try holderResult.get()
            try migrationResult?.get()
        }
    }

    @Test(
        "a migration of one schema does not wait for another schema's running migration",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func otherSchemasDoNotWait() async throws {
        try await withStore(.postgres) { store, _ in
            let held = Latch()
            let release = Latch()
            // A migration of this store's schema, running: it holds the schema lock.
            let holder = Task {
                try await store.withTransaction { tx in
                    try await tx.execute(SQLDialect.postgres.schemaLockStatement!)
                    held.open()
                    await release.wait()
                }
            }
            await held.wait()
            let schema = uniqueName("os")
            let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
            let migrated: Result<Bool, any Error>
            do {
                try await TestPostgres.execute("CREATE SCHEMA \(schema)")
                var configuration = try TestPostgres.fluentConfiguration()
                configuration.searchPath = [schema]
                databases.use(.postgres(configuration: configuration), as: .psql)
                // Another schema's store migrates to the end while the first still holds its lock.
                migrated = .success(
                    try await within(.seconds(60), "another schema's migration") {
                        _ = try await FluentStore(
                            databases: databases,
                            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
                        )
                        return true
                    }
                )
            } catch {
                migrated = .failure(error)
            }
            release.open()
            let holderResult = await holder.result
            await databases.shutdownAsync()
            try? await TestPostgres.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            #expect(try migrated.get())
            try holderResult.get()
        }
    }

    @Test(
        "replicas on a database whose default isolation is repeatable read, let go together by the schema lock, all open: a migration reads what the one before it committed",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func repeatableReadDefault() async throws {
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        try await withStore(.postgres) { store, _ in
            let schema = uniqueName("rr")
            try await TestPostgres.execute("CREATE SCHEMA \(schema)")
            var configuration = try TestPostgres.fluentConfiguration()
            configuration.searchPath = [schema]
            configuration.coreConfiguration.options.additionalStartupParameters.append(("default_transaction_isolation", "repeatable read"))
            let pools = (0..<2).map { _ in Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton) }
            for databases in pools { databases.use(.postgres(configuration: configuration), as: .psql) }
            // A running migration of this schema: both replicas start (and take their first
            // statement's snapshot) while it holds the schema's key.
            let holder = await SchemaKeyHolder(store, schema: schema)
            let replicas = pools.map { databases in
                Task { () -> String? in
                    do {
                        _ = try await FluentStore(databases: databases, logger: quiet)
                        return nil
                    } catch { return "\(error)" }
                }
            }
            var waiting: (any Error)?
            do { try await holder.waitForWaiters(2) } catch { waiting = error }
            try await holder.release()
            var failures: [String] = []
            for replica in replicas { if let failure = await replica.value { failures.append(failure) } }
            for databases in pools { await databases.shutdownAsync() }
            try? await TestPostgres.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            if let waiting { throw waiting }
            #expect(failures.isEmpty, "\(failures)")
        }
    }
}
