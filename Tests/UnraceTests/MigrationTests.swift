import Foundation
import Logging
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// Databases written by an earlier Unrace keep working after an upgrade.
@Suite("Schema migrations", .timeLimit(.minutes(10)))
struct MigrationTests {
    @Test("schema 8 moves a queue's inbox streams and events to the reserved namespace, heads and all; others stay", arguments: sqlBackends)
    func queueStreamsMove(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in
            // A database as version 7 left it: a queue's stream `q/k` at head 1, and a stream of
            // a caller's own.
            _ = try await store.withTransaction { tx in
                try await tx.execute("DELETE FROM unrace_schema_migrations WHERE version >= 8")
                try await tx.execute("DROP INDEX unrace_operations_expiry")
                try await tx.execute(
                    "CREATE INDEX unrace_operations_scope_expiry ON unrace_operations (scope, expires_at) WHERE expires_at IS NOT NULL"
                )
                try await tx.execute("INSERT INTO unrace_queue_sequences (queue, key, last_sequence) VALUES ('q', 'k', 2)")
                try await tx.execute("INSERT INTO unrace_inbox_streams (stream, head, parked) VALUES ('q/k', 1, 0), ('orders-7', 3, 0)")
                try await tx.execute(
                    """
                    INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at)
                    VALUES ('q/m1', 'q/k', 1, 'task', NULL, 'applied', NULL, 0), ('e3', 'orders-7', 3, 'OrderShipped', NULL, 'applied', NULL, 0)
                    """
                )
            }
            try await Self.reopened(backend, location) { upgraded in try await Self.check(upgraded) }
        }
    }

    static func reopened(_ backend: SQLBackend, _ location: String, _ body: (any SQLStore) async throws -> Void) async throws {
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        switch backend {
        case .sqlite: try await body(try await SQLiteStore(path: location, logger: quiet))
        case .postgres: try await PostgresStore.withStore(url: location, logger: quiet) { try await body($0) }
        }
    }

    static func check<S: SQLStore>(_ store: S) async throws {
        let inbox = try Inbox(store: store)
        #expect(try await inbox.head(of: "$q/k") == 1)
        #expect(try await inbox.head(of: "q/k") == 0)
        #expect(try await inbox.head(of: "orders-7") == 3)
        // The queue's next delivery on its key applies where the stream left off.
        let queue = try MessageQueue(store: store, name: "q")
        try await queue.enqueue([OutgoingMessage(id: "m2", payload: [2], orderingKey: "k")])
        let delivery = try #require(try await queue.lease(worker: "w").first)
        #expect(delivery.sequence == 3)
        #expect(try await inbox.receive(try delivery.inboxEvent(type: "task")) { _, _ in .applied } == .parked(waitingFor: 2))
        let versions = try await store.withTransaction { tx in
            try await tx.query("SELECT MAX(version) AS v FROM unrace_schema_migrations")[0].int64("v")
        }
        #expect(versions == 9)
    }
}
