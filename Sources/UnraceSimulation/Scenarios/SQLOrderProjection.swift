public import Unrace
public import UnraceSQL

/// Orders projected from their events into a SQL table `<prefix>_orders (id, state)`, with every
/// handler invocation logged in `<prefix>_handled (event_id)` so tests can count them.
///
/// ``apply(_:_:)`` is the guarded handler (the lifecycle decides; impossible moves are rejected);
/// ``applyNaively(_:_:)`` writes whatever state the event type names.
public struct SQLOrderProjection: Sendable {
    /// The table-name prefix.
    public let prefix: String

    /// A projection whose tables start with `prefix` (letters, digits and `_` only).
    public init(prefix: String) { self.prefix = prefix }

    var orders: String { "\(prefix)_orders" }
    var handled: String { "\(prefix)_handled" }

    /// Creates the tables.
    public func createTables<S: SQLStore>(_ store: S) async throws {
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(orders) (id TEXT PRIMARY KEY, state TEXT NOT NULL)")
            try await tx.execute("CREATE TABLE \(handled) (event_id TEXT NOT NULL)")
        }
    }

    /// The guarded handler: applies the event through the order lifecycle.
    public func apply<T: SQLTransaction>(_ tx: T, _ event: InboxEvent) async throws -> InboxVerdict {
        try await tx.execute("INSERT INTO \(handled) (event_id) VALUES (?)", [.text(event.id)])
        let current = try await tx.query("SELECT state FROM \(orders) WHERE id = ?", [.text(event.stream)]).first?.string("state")
        switch OrderStreams.lifecycle.applyWithPlaceholder(event.type, to: current) {
        case .moved(_, let target):
            try await upsert(tx, event.stream, target)
            return .applied
        case .rejected(let reason), .absorbed(let reason):
            return .rejected(reason: reason)
        }
    }

    /// The naive handler: writes the state the event type names, whatever the order's state is.
    public func applyNaively<T: SQLTransaction>(_ tx: T, _ event: InboxEvent) async throws {
        try await tx.execute("INSERT INTO \(handled) (event_id) VALUES (?)", [.text(event.id)])
        try await upsert(tx, event.stream, OrderStreams.naiveTarget[event.type] ?? "unknown")
    }

    private func upsert<T: SQLTransaction>(_ tx: T, _ order: String, _ state: String) async throws {
        try await tx.execute(
            "INSERT INTO \(orders) (id, state) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            [.text(order), .text(state)]
        )
    }

    /// Every order's state.
    public func finalStates<S: SQLStore>(_ store: S) async throws -> [String: String] {
        try await store.withTransaction { tx in
            var states: [String: String] = [:]
            for row in try await tx.query("SELECT id, state FROM \(orders)") {
                states[try row.string("id")] = try row.string("state")
            }
            return states
        }
    }

    /// How many times handlers ran, and for how many distinct events.
    public func handlerRuns<S: SQLStore>(_ store: S) async throws -> (runs: Int, distinct: Int) {
        try await store.withTransaction { tx in
            let row = try await tx.query("SELECT COUNT(*) AS runs, COUNT(DISTINCT event_id) AS events FROM \(handled)")[0]
            return (Int(try row.int64("runs")), Int(try row.int64("events")))
        }
    }

    /// Drops the tables.
    public func dropTables<S: SQLStore>(_ store: S) async throws {
        _ = try await store.withTransaction { tx in
            try await tx.execute("DROP TABLE \(orders)")
            try await tx.execute("DROP TABLE \(handled)")
        }
    }
}
