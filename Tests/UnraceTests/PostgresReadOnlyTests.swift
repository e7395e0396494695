import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceShop

/// A database that turned read-only under a step (a primary demoted to a standby): typed,
/// retryable, never a 500.
extension PostgresLivenessTests {
    @Test("a write a read-only database refuses (SQLSTATE 25006, as a standby does) is database_read_only, retryable; nothing is written")
    func readOnly() async throws {
        try await Self.withPostgres { store in
            let table = uniqueName("ro")
            _ = try await store.withTransaction { tx in try await tx.execute("CREATE TABLE \(table) (id TEXT)") }
            do {
                _ = try await store.withTransaction { tx in
                    try await tx.execute("SET TRANSACTION READ ONLY")
                    try await tx.execute("INSERT INTO \(table) (id) VALUES ('x')")
                }
                Issue.record("a write in a read-only transaction succeeded")
            } catch let error as UnraceError {
                #expect(error.code == .databaseReadOnly && error.isRetryable)
            }
            #expect(try await countRows(store, table) == 0)
        }
    }

    @Test("a shop whose database turned read-only (a standby) answers /health and writes with 503 and Retry-After, never 500")
    func readOnlyShop() async throws {
        let database = uniqueName("ro")
        try await TestPostgres.execute("CREATE DATABASE \(database)")
        let url = try TestPostgres.requireURL().replacingOccurrences(of: "/unrace_test", with: "/\(database)")
        try await PostgresStore.withStore(url: url, logger: Self.quiet) { store in try await Shop(store: store, logger: Self.quiet).setUp()
        }
        try await TestPostgres.execute("ALTER DATABASE \(database) SET default_transaction_read_only = on")
        // Migrated already: opening it only reads.
        try await PostgresStore.withStore(url: url, logger: Self.quiet) { store in
            try await withLiveServer(try Shop(store: store, logger: Self.quiet).router()) { client in
                let health = try await client.send(.GET, "/health")
                #expect(health.status == 503 && health.problemCode == "database_read_only" && health.header("Retry-After") == "1")
                let order = try await client.send(
                    .POST,
                    "/orders",
                    headers: [("Idempotency-Key", "ro")],
                    json: #"{"sku":"widget","quantity":1}"#
                )
                #expect(
                    order.status == 503 && order.problemCode == "service_unavailable" && order.header("Retry-After") == "1",
                    "\(order.status) \(order.body)"
                )
            }
        }
        try await TestPostgres.execute("DROP DATABASE \(database) WITH (FORCE)")
    }
}
