// swift-format-ignore-file
// The README's snippets stand here verbatim (ReadmeSnippetTests checks them line for line).
import GRDB
import PostgresNIO
import Testing
import Unrace
import UnracePostgres
import UnraceSQLite

// The README's GRDB and postgres-nio snippets, verbatim, in functions with the names they assume;
// `ReadmeSnippetTests.readmeSnippetsAreHere` finds them here. Apart from the Vapor snippets:
// GRDB's `Database` and Fluent's would clash.

/// The order the snippets insert: a GRDB record.
private struct Order: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "orders"
    var id: String
    var sku: String
}

// README: "GRDB records and postgres-nio queries" — SQLite
private func readmeGRDB(operations: Operations<SQLiteStore>, order: Order) async throws {
    _ = try await operations.perform(key: "order:\(order.id)", scope: "orders") { tx in
        try await tx.withDatabase { db in try order.insert(db) }   // GRDB records, in the claim's transaction
        return order.id
    }
}

// README: "GRDB records and postgres-nio queries" — PostgreSQL
private func readmePostgresNIO(operations: Operations<PostgresStore>, order: Order) async throws {
    _ = try await operations.perform(key: "order:\(order.id)", scope: "orders") { tx in
        try await tx.run("INSERT INTO orders (id, sku) VALUES (\(order.id), \(order.sku))")   // bound, never spliced
        return order.id
    }
}

@Suite("README snippets on GRDB and postgres-nio")
struct ReadmeGRDBSnippetTests {
    @Test("the README's GRDB snippet inserts one record for a redelivered message; a failing body inserts none")
    func grdbSnippetRuns() async throws {
        try await withStore(.sqlite) { store, _ in
            let store = try #require(store as? SQLiteStore)
            try await store.withTransaction { tx in try await tx.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, sku TEXT NOT NULL)") }
            let operations = try Operations(store: store)
            for _ in 0..<3 { try await readmeGRDB(operations: operations, order: Order(id: "o-1", sku: "widget")) }
            // A body that throws after its GRDB insert leaves nothing: the record rolls back with the step.
            await #expect(throws: UnraceError.self) {
                try await operations.perform(key: "order:o-2", scope: "orders") { tx in
                    try await tx.withDatabase { db in try Order(id: "o-2", sku: "widget").insert(db) }
                    try await tx.withDatabase { db in try Order(id: "o-1", sku: "again").insert(db) }   // a broken primary key
                    return "o-2"
                }
            }
            let ids = try await store.withTransaction { tx in try await tx.withDatabase { db in try String.fetchAll(db, sql: "SELECT id FROM orders ORDER BY id") } }
            #expect(ids == ["o-1"])
        }
    }

    @Test("the README's postgres-nio snippet inserts one row for a redelivered message, binding its values")
    func postgresNIOSnippetRuns() async throws {
        try await withStore(.postgres) { store, _ in
            let store = try #require(store as? PostgresStore)
            try await store.withTransaction { tx in try await tx.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, sku TEXT NOT NULL)") }
            let operations = try Operations(store: store)
            let quoted = Order(id: "o-'1", sku: "x'); DROP TABLE orders; --")
            for _ in 0..<3 { try await readmePostgresNIO(operations: operations, order: quoted) }
            let rows = try await store.withTransaction { tx in try await tx.query("SELECT id, sku FROM orders") }
            #expect(rows.count == 1)
            #expect(rows.first?["id"] == .text(quoted.id))
            #expect(rows.first?["sku"] == .text(quoted.sku))
        }
    }
}
