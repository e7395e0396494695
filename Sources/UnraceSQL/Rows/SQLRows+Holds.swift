public import Unrace
public import UnraceCore

/// `HoldRows` in SQL.
extension SQLRows: HoldRows {
    public func resource(name: String, lock: Bool) async throws -> ResourceState? {
        try await select("SELECT capacity, held, confirmed FROM unrace_resources WHERE name = ?", [.text(name)], lock: lock).first.map {
            row in
            ResourceState(
                name: name,
                capacity: try row.int64("capacity"),
                held: try row.int64("held"),
                confirmed: try row.int64("confirmed")
            )
        }
    }

    public func saveResource(_ resource: ResourceState, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_resources (name, capacity, held, confirmed) VALUES (?, ?, ?, ?)",
                [.text(resource.name), .integer(resource.capacity), .integer(resource.held), .integer(resource.confirmed)]
            )
        } else {
            try await write(
                "UPDATE unrace_resources SET held = ?, confirmed = ? WHERE name = ?",
                [.integer(resource.held), .integer(resource.confirmed), .text(resource.name)]
            )
        }
    }

    public func hold(key: String, lock: Bool) async throws -> Hold? {
        try await select("SELECT \(SQLText.holdColumns) FROM unrace_holds WHERE key = ?", [.text(key)], lock: lock).first.map(
            Self.decodeHold
        )
    }

    public func expiredHolds(resource: String, at now: Timestamp) async throws -> [Hold] {
        try await select(
            "SELECT \(SQLText.holdColumns) FROM unrace_holds WHERE resource = ? AND state = 'held' AND expires_at <= ? ORDER BY key\(byteOrder)",
            [.text(resource), .integer(now.milliseconds)],
            lock: true
        ).map(Self.decodeHold)
    }

    public func resourcesWithExpiredHolds(at now: Timestamp, limit: Int) async throws -> [String] {
        try await select(
            "SELECT resource FROM unrace_holds WHERE state = 'held' AND expires_at <= ? GROUP BY resource ORDER BY resource\(byteOrder) LIMIT ?",
            [.integer(now.milliseconds), .int(limit)],
            lock: false
        ).map { try $0.string("resource") }
    }

    public func saveHold(_ hold: Hold, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_holds (\(SQLText.holdColumns)) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(hold.key), .text(hold.resource), .integer(hold.units), .text(hold.state.rawValue),
                    .integer(hold.expiresAt.milliseconds),
                ]
            )
        } else {
            try await write("UPDATE unrace_holds SET state = ? WHERE key = ?", [.text(hold.state.rawValue), .text(hold.key)])
        }
    }

    /// One statement per state and 500 holds.
    public func saveHoldStates(_ holds: [Hold]) async throws {
        for state in Set(holds.map(\.state)).sorted(by: { $0.rawValue < $1.rawValue }) {
            let keys = holds.filter { $0.state == state }.map(\.key)
            for chunk in stride(from: 0, to: keys.count, by: 500) {
                let part = keys[chunk..<min(chunk + 500, keys.count)]
                try await write(
                    "UPDATE unrace_holds SET state = ? WHERE key IN (\(SQLText.placeholders(part.count)))",
                    [.text(state.rawValue)] + part.map { .text($0) }
                )
            }
        }
    }

    static func decodeHold(_ row: SQLRow) throws -> Hold {
        guard let state = Hold.State(rawValue: try row.string("state")) else {
            throw UnraceError(.storeFailure, "a stored hold has an unknown state")
        }
        return Hold(
            key: try row.string("key"),
            resource: try row.string("resource"),
            units: try row.int64("units"),
            state: state,
            expiresAt: Timestamp(milliseconds: try row.int64("expires_at"))
        )
    }
}
