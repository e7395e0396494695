public import Unrace
public import UnraceCore

/// `CounterRows` in SQL.
extension SQLRows: CounterRows {
    public func counter(name: String, lock: Bool) async throws -> CounterState? {
        try await select("SELECT value, floor, ceiling FROM unrace_counters WHERE name = ?", [.text(name)], lock: lock).first.map { row in
            CounterState(name: name, value: try row.int64("value"), floor: try row.int64("floor"), ceiling: try row.int64("ceiling"))
        }
    }

    public func saveCounter(_ counter: CounterState, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_counters (name, value, floor, ceiling) VALUES (?, ?, ?, ?)",
                [.text(counter.name), .integer(counter.value), .integer(counter.floor), .integer(counter.ceiling)]
            )
        } else {
            try await write("UPDATE unrace_counters SET value = ? WHERE name = ?", [.integer(counter.value), .text(counter.name)])
        }
    }

    public func quota(name: String, lock: Bool) async throws -> QuotaState? {
        try await select("SELECT window_start, used FROM unrace_quotas WHERE name = ?", [.text(name)], lock: lock).first.map { row in
            QuotaState(name: name, windowStart: Timestamp(milliseconds: try row.int64("window_start")), used: try row.int64("used"))
        }
    }

    public func saveQuota(_ quota: QuotaState, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_quotas (name, window_start, used) VALUES (?, ?, ?)",
                [.text(quota.name), .integer(quota.windowStart.milliseconds), .integer(quota.used)]
            )
        } else {
            try await write(
                "UPDATE unrace_quotas SET window_start = ?, used = ? WHERE name = ?",
                [.integer(quota.windowStart.milliseconds), .integer(quota.used), .text(quota.name)]
            )
        }
    }
}
