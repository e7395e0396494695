public import Unrace
public import UnraceCore

/// `LifecycleRows` in SQL.
extension SQLRows: LifecycleRows {
    public func lifecycleState(lifecycle: String, entity: String, lock: Bool) async throws -> String? {
        let rows: [SQLRow]
        if lock && dialect.hasConcurrentWriters {
            // An absent entity gets a row with the empty state (never a valid state name), which
            // a concurrent first event then waits on.
            rows = try await select(
                """
                INSERT INTO unrace_lifecycle_states (lifecycle, entity, state, updated_at) VALUES (?, ?, '', 0)
                ON CONFLICT (lifecycle, entity) DO UPDATE SET entity = excluded.entity RETURNING state
                """,
                [.text(lifecycle), .text(entity)],
                lock: false
            )
        } else {
            rows = try await select(
                "SELECT state FROM unrace_lifecycle_states WHERE lifecycle = ? AND entity = ?",
                [.text(lifecycle), .text(entity)],
                lock: false
            )
        }
        guard let state = try rows.first?.string("state"), !state.isEmpty else { return nil }
        return state
    }

    public func saveLifecycleState(lifecycle: String, entity: String, state: String, isNew: Bool, now: Timestamp) async throws {
        try await write(
            """
            INSERT INTO unrace_lifecycle_states (lifecycle, entity, state, updated_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (lifecycle, entity) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
            """,
            [.text(lifecycle), .text(entity), .text(state), .integer(now.milliseconds)]
        )
    }

    public func forgetUnseenEntity(lifecycle: String, entity: String) async throws {
        // Only the placeholder a locking read wrote (the empty state) goes.
        guard dialect.hasConcurrentWriters else { return }
        try await write(
            "DELETE FROM unrace_lifecycle_states WHERE lifecycle = ? AND entity = ? AND state = ''",
            [.text(lifecycle), .text(entity)]
        )
    }
}
