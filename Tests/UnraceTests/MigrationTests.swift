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

    @Test(
        "schema 10 indexes only parked positions: events kept, a parked position still taken, the gap still drains",
        arguments: sqlBackends
    )
    func parkedPositions(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in
            // A database as version 9 left it: every event's position unique (under a constraint
            // name other than the one PostgreSQL generates: the migration finds it by its columns),
            // stream `s` at head 2 with event 4 parked.
            let dialect = store.dialect
            _ = try await store.withTransaction { tx in
                try await tx.execute("DELETE FROM unrace_schema_migrations WHERE version >= 10")
                try await tx.execute("DROP TABLE unrace_inbox_events")
                try await tx.execute(
                    """
                    CREATE TABLE unrace_inbox_events (
                      event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, sequence BIGINT NOT NULL CHECK (sequence >= 1),
                      type TEXT NOT NULL, payload \(dialect.blobType),
                      status TEXT NOT NULL CHECK (status IN ('applied', 'rejected', 'parked', 'skipped')),
                      reason TEXT, received_at BIGINT NOT NULL,
                      CONSTRAINT inbox_positions_by_another_name UNIQUE (stream, sequence)
                    )\(dialect.keyedTableSuffix)
                    """
                )
                try await tx.execute("INSERT INTO unrace_inbox_streams (stream, head, parked, gap_since) VALUES ('s', 2, 1, 0)")
                try await tx.execute(
                    """
                    INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at)
                    VALUES ('e1', 's', 1, 't', NULL, 'applied', NULL, 0), ('e2', 's', 2, 't', NULL, 'rejected', 'no', 0),
                      ('e4', 's', 4, 't', NULL, 'parked', NULL, 0)
                    """
                )
            }
            #expect(try await Self.positionIndexes(store, backend) == ["unique"])
            try await Self.reopened(backend, location) { upgraded in
                try await Self.checkParked(upgraded, backend)
            }
        }
    }

    static func checkParked<S: SQLStore>(_ store: S, _ backend: SQLBackend) async throws {
        #expect(try await Self.positionIndexes(store, backend) == ["unrace_inbox_parked"])
        let inbox = try Inbox(store: store)
        func receive(_ id: String, _ sequence: Int64) async throws -> InboxOutcome {
            try await inbox.receive(try InboxEvent(id: id, stream: "s", sequence: sequence, type: "t")) { _, _ in .applied }
        }
        // Taken positions: below the head (kept events) and the parked one.
        #expect(try await receive("e1", 1) == .duplicate)
        #expect(try await receive("other-2", 2) == .duplicate)
        #expect(try await receive("other-4", 4) == .duplicate)
        #expect(try await receive("e3", 3) == .applied(drained: 1))
        #expect(try await inbox.head(of: "s") == 4)
        let statuses = try await store.withTransaction { tx in
            try await tx.query("SELECT event_id, status FROM unrace_inbox_events WHERE stream = 's' ORDER BY sequence")
                .map { "\(try $0.string("event_id")):\(try $0.string("status"))" }
        }
        #expect(statuses == ["e1:applied", "e2:rejected", "e3:applied", "e4:applied"])
    }

    @Test("a parked position is looked up through the parked events' index", arguments: sqlBackends)
    func parkedLookupUsesTheIndex(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            let plan = try await store.withTransaction { tx -> String in
                if backend == .postgres {
                    // Small tables are scanned whatever their indexes: ask whether the index serves it.
                    try await tx.execute("SET LOCAL enable_seqscan = off")
                    return try await tx.query("EXPLAIN " + InboxSQL.parkedPositionSQL, [.text("s"), .integer(4)])
                        .map { try $0.string("QUERY PLAN") }.joined(separator: "\n")
                }
                return try await tx.query("EXPLAIN QUERY PLAN " + InboxSQL.parkedPositionSQL, [.text("s"), .integer(4)])
                    .map { try $0.string("detail") }.joined(separator: "\n")
            }
            #expect(plan.contains("unrace_inbox_parked"), "\(plan)")
        }
    }

    /// The indexes over `unrace_inbox_events`' positions: their names, or `unique` for a table
    /// constraint's own index.
    static func positionIndexes(_ store: any SQLStore, _ backend: SQLBackend) async throws -> [String] {
        try await store.withTransaction { tx in
            if backend == .postgres {
                return try await tx.query(
                    """
                    SELECT indexname AS name, indexdef AS definition FROM pg_indexes
                    WHERE schemaname = current_schema() AND tablename = 'unrace_inbox_events' AND indexdef LIKE '%sequence%'
                    """
                ).map { row in
                    let name = try row.string("name")
                    let definition = try row.string("definition")
                    return definition.contains("WHERE (status = 'parked'::text)") ? name : "unique"
                }
            }
            return try await tx.query(
                """
                SELECT il.name AS name, il.partial AS partial FROM pragma_index_list('unrace_inbox_events') AS il
                WHERE EXISTS (SELECT 1 FROM pragma_index_info(il.name) AS ii WHERE ii.name = 'sequence')
                """
            ).map { row in try row.int64("partial") == 1 ? try row.string("name") : "unique" }
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
        #expect(versions == 10)
    }
}
