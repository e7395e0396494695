package import UnraceCore

/// Records, counters, quotas and holds on any SQL store. Every guard is one conditional
/// statement (or one short transaction for holds); none depends on an earlier read.
package struct SQLLostUpdateSteps: Sendable {
    package let lockClause: String

    package init(lockClause: String) { self.lockClause = lockClause }

    package static func statements(blob: String, keyedTable: String = "") -> [String] {
        [
            """
            CREATE TABLE unrace_records (
              collection TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL CHECK (version >= 1),
              value \(blob) NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (collection, id)
            )\(keyedTable)
            """,
            """
            CREATE TABLE unrace_counters (
              name TEXT PRIMARY KEY, value BIGINT NOT NULL, floor BIGINT NOT NULL, ceiling BIGINT NOT NULL,
              CHECK (value >= floor AND value <= ceiling)
            )\(keyedTable)
            """,
            "CREATE TABLE unrace_quotas (name TEXT PRIMARY KEY, window_start BIGINT NOT NULL, used BIGINT NOT NULL)\(keyedTable)",
            """
            CREATE TABLE unrace_resources (
              name TEXT PRIMARY KEY, capacity BIGINT NOT NULL, held BIGINT NOT NULL, confirmed BIGINT NOT NULL,
              CHECK (held >= 0 AND confirmed >= 0 AND held + confirmed <= capacity)
            )\(keyedTable)
            """,
            """
            CREATE TABLE unrace_holds (
              key TEXT PRIMARY KEY, resource TEXT NOT NULL, units BIGINT NOT NULL CHECK (units >= 1),
              state TEXT NOT NULL CHECK (state IN ('held', 'confirmed', 'released')), expires_at BIGINT NOT NULL
            )\(keyedTable)
            """,
            "CREATE INDEX unrace_holds_live ON unrace_holds (resource, expires_at) WHERE state = 'held'",
        ]
    }

    // MARK: Records

    package func readRecord(_ tx: some SQLTransaction, collection: String, id: String) async throws -> (value: [UInt8], version: Int64)? {
        let rows = try await tx.query(
            "SELECT version, value FROM unrace_records WHERE collection = ? AND id = ?", [.text(collection), .text(id)]
        )
        guard let row = rows.first else { return nil }
        return (row.optionalBytes("value") ?? [], try row.int64("version"))
    }

    package func createRecord(_ tx: some SQLTransaction, collection: String, id: String, value: [UInt8], now: Timestamp) async throws -> Int64? {
        let inserted = try await tx.query(
            """
            INSERT INTO unrace_records (collection, id, version, value, updated_at) VALUES (?, ?, 1, ?, ?)
            ON CONFLICT (collection, id) DO NOTHING RETURNING version
            """,
            [.text(collection), .text(id), .blob(value), .integer(now.milliseconds)]
        )
        if !inserted.isEmpty { return nil }
        return try await readRecord(tx, collection: collection, id: id)?.version ?? 0
    }

    package func writeRecord(
        _ tx: some SQLTransaction, collection: String, id: String, value: [UInt8], expectedVersion: Int64, now: Timestamp
    ) async throws -> Int64? {
        let rows = try await tx.query(
            """
            UPDATE unrace_records SET value = ?, version = version + 1, updated_at = ?
            WHERE collection = ? AND id = ? AND version = ? RETURNING version
            """,
            [.blob(value), .integer(now.milliseconds), .text(collection), .text(id), .integer(expectedVersion)]
        )
        return rows.first?.optionalInt64("version")
    }

    // MARK: Counters and quotas

    package func createCounter(_ tx: some SQLTransaction, name: String, value: Int64, floor: Int64, ceiling: Int64) async throws -> Bool {
        let rows = try await tx.query(
            "INSERT INTO unrace_counters (name, value, floor, ceiling) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING value",
            [.text(name), .integer(value), .integer(floor), .integer(ceiling)]
        )
        return !rows.isEmpty
    }

    package func adjustCounter(_ tx: some SQLTransaction, name: String, by delta: Int64) async throws -> CounterStep {
        // The bound is checked by the same statement that writes: no read precedes it.
        let rows = try await tx.query(
            "UPDATE unrace_counters SET value = value + ? WHERE name = ? AND value + ? >= floor AND value + ? <= ceiling RETURNING value",
            [.integer(delta), .text(name), .integer(delta), .integer(delta)]
        )
        if let value = rows.first?.optionalInt64("value") { return .applied(value: value) }
        let current = try await tx.query("SELECT value FROM unrace_counters WHERE name = ?", [.text(name)])
        guard let value = current.first?.optionalInt64("value") else { return .notFound }
        return .refused(current: value)
    }

    package func consumeQuota(_ tx: some SQLTransaction, name: String, units: Int64, limit: Int64, windowStart: Timestamp) async throws -> QuotaStep {
        // One upsert: a new window starts from `units`; the same window adds them; the WHERE
        // refuses the update that would pass the limit.
        let rows = try await tx.query(
            """
            INSERT INTO unrace_quotas (name, window_start, used) VALUES (?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET
              used = CASE WHEN unrace_quotas.window_start = excluded.window_start
                          THEN unrace_quotas.used + excluded.used ELSE excluded.used END,
              window_start = excluded.window_start
            WHERE (CASE WHEN unrace_quotas.window_start = excluded.window_start
                        THEN unrace_quotas.used + excluded.used ELSE excluded.used END) <= ?
            RETURNING used
            """,
            [.text(name), .integer(windowStart.milliseconds), .integer(units), .integer(limit)]
        )
        if let used = rows.first?.optionalInt64("used") { return .granted(used: used) }
        let current = try await tx.query("SELECT used FROM unrace_quotas WHERE name = ?", [.text(name)])
        return .denied(used: current.first?.optionalInt64("used") ?? 0)
    }

    // MARK: Holds

    package func createResource(_ tx: some SQLTransaction, name: String, capacity: Int64) async throws -> Bool {
        let rows = try await tx.query(
            "INSERT INTO unrace_resources (name, capacity, held, confirmed) VALUES (?, ?, 0, 0) ON CONFLICT (name) DO NOTHING RETURNING capacity",
            [.text(name), .integer(capacity)]
        )
        return !rows.isEmpty
    }

    package func hold(
        _ tx: some SQLTransaction, resource: String, key: String, units: Int64, now: Timestamp, expiresAt: Timestamp
    ) async throws -> HoldStep {
        if let existing = try await fetchHold(tx, key: key, lock: false) { return .hold(existing) }
        // Expired holds of this resource give their units back first.
        let expired = try await tx.query(
            "UPDATE unrace_holds SET state = 'released' WHERE resource = ? AND state = 'held' AND expires_at <= ? RETURNING units",
            [.text(resource), .integer(now.milliseconds)]
        )
        let reclaimed = try expired.reduce(Int64(0)) { $0 + (try $1.int64("units")) }
        if reclaimed > 0 {
            try await tx.execute("UPDATE unrace_resources SET held = held - ? WHERE name = ?", [.integer(reclaimed), .text(resource)])
        }
        let taken = try await tx.query(
            "UPDATE unrace_resources SET held = held + ? WHERE name = ? AND held + confirmed + ? <= capacity RETURNING held",
            [.integer(units), .text(resource), .integer(units)]
        )
        guard !taken.isEmpty else {
            let rows = try await tx.query("SELECT capacity - held - confirmed AS free FROM unrace_resources WHERE name = ?", [.text(resource)])
            guard let free = rows.first?.optionalInt64("free") else { return .notFound }
            return .insufficient(available: free)
        }
        let hold = Hold(key: key, resource: resource, units: units, state: .held, expiresAt: expiresAt)
        try await tx.executeBeforeCommit(
            "INSERT INTO unrace_holds (key, resource, units, state, expires_at) VALUES (?, ?, ?, 'held', ?)",
            [.text(key), .text(resource), .integer(units), .integer(expiresAt.milliseconds)]
        )
        return .hold(hold)
    }

    package func settleHold(_ tx: some SQLTransaction, key: String, confirm: Bool, now: Timestamp) async throws -> HoldStep {
        guard var hold = try await fetchHold(tx, key: key, lock: true) else { return .notFound }
        guard hold.state == .held else { return .notLive(hold) }
        let expired = hold.expiresAt <= now
        hold.state = confirm && !expired ? .confirmed : .released
        try await tx.execute("UPDATE unrace_holds SET state = ? WHERE key = ?", [.text(hold.state.rawValue), .text(key)])
        try await tx.execute(
            "UPDATE unrace_resources SET held = held - ?, confirmed = confirmed + ? WHERE name = ?",
            [.integer(hold.units), .integer(hold.state == .confirmed ? hold.units : 0), .text(hold.resource)]
        )
        return expired ? .notLive(hold) : .hold(hold)
    }

    private func fetchHold(_ tx: some SQLTransaction, key: String, lock: Bool) async throws -> Hold? {
        let rows = try await tx.query(
            "SELECT resource, units, state, expires_at FROM unrace_holds WHERE key = ?" + (lock ? " \(lockClause)" : ""),
            [.text(key)]
        )
        guard let row = rows.first else { return nil }
        return Hold(
            key: key, resource: try row.string("resource"), units: try row.int64("units"),
            state: Hold.State(rawValue: try row.string("state")) ?? .released,
            expiresAt: Timestamp(milliseconds: try row.int64("expires_at"))
        )
    }
}
