package import UnraceCore

/// ``InboxRows`` over any ``SQLTransaction``: the inbox tables of SQLite and PostgreSQL.
package struct SQLInboxRows<T: SQLTransaction>: InboxRows {
    let tx: T
    let dialect: SQLDialect

    package init(_ tx: T, dialect: SQLDialect) {
        self.tx = tx
        self.dialect = dialect
    }

    package func lockStream(_ stream: String) async throws -> StreamHead {
        // SQLite's write transaction is already exclusive: a read suffices, and a new stream's
        // row is written once, by `save`. PostgreSQL must create and lock the row first.
        let rows = try await tx.query(dialect == .sqlite ? InboxSQL.readStreamSQL : InboxSQL.lockStreamSQL, [.text(stream)])
        guard let row = rows.first else { return StreamHead(stream: stream, head: 0, parked: 0, gapSince: nil) }
        return StreamHead(
            stream: stream, head: try row.int64("head"), parked: Int(try row.int64("parked")),
            gapSince: row.optionalInt64("gap_since").map(Timestamp.init(milliseconds:))
        )
    }

    package func isTaken(_ event: InboxEvent) async throws -> Bool {
        let rows = try await tx.query(
            "SELECT 1 AS taken FROM unrace_inbox_events WHERE event_id = ? OR (stream = ? AND sequence = ?) LIMIT 1",
            [.text(event.id), .text(event.stream), .integer(event.sequence)]
        )
        return !rows.isEmpty
    }

    // The writes below are never read back within the step (the drain reads other sequences),
    // so they may travel with the commit.
    package func insert(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try await tx.executeBeforeCommit(
            """
            INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            InboxSQL.eventValues(event, status, reason, now)
        )
    }

    package func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws {
        guard dialect == .postgres else {
            try await insert(event, status: status, reason: reason, now: now)
            return try await save(stream)
        }
        try await tx.execute(InboxSQL.recordAppliedSQL, InboxSQL.recordAppliedValues(event, status, reason, now, stream))
    }

    package func setStatus(of event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws {
        try await tx.executeBeforeCommit(
            "UPDATE unrace_inbox_events SET status = ?, reason = ? WHERE event_id = ?",
            [.text(status.rawValue), reason.map(SQLValue.text) ?? .null, .text(event.id)]
        )
    }

    package func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent? {
        let rows = try await tx.query(
            """
            SELECT event_id, type, payload FROM unrace_inbox_events
            WHERE stream = ? AND sequence = ? AND status = 'parked'
            """,
            [.text(stream), .integer(sequence)]
        )
        guard let row = rows.first else { return nil }
        return try InboxEvent(
            id: row.string("event_id"), stream: stream, sequence: sequence, type: row.string("type"),
            payload: row.optionalBytes("payload") ?? []
        )
    }

    package func lowestParkedSequence(stream: String) async throws -> Int64? {
        let rows = try await tx.query(
            "SELECT MIN(sequence) AS lowest FROM unrace_inbox_events WHERE stream = ? AND status = 'parked'",
            [.text(stream)]
        )
        return rows.first?.optionalInt64("lowest")
    }

    package func save(_ head: StreamHead) async throws {
        try await tx.executeBeforeCommit(
            """
            INSERT INTO unrace_inbox_streams (head, parked, gap_since, stream) VALUES (?, ?, ?, ?)
            ON CONFLICT (stream) DO UPDATE SET head = excluded.head, parked = excluded.parked, gap_since = excluded.gap_since
            """,
            [.integer(head.head), .int(head.parked), head.gapSince.map { .integer($0.milliseconds) } ?? .null, .text(head.stream)]
        )
    }

    /// Streams whose gap is older than `cutoff`, oldest first.
    package func gaps(before cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        let rows = try await tx.query(
            """
            SELECT stream, head, parked, gap_since FROM unrace_inbox_streams
            WHERE parked > 0 AND gap_since <= ? ORDER BY gap_since LIMIT ?
            """,
            [.integer(cutoff.milliseconds), .int(limit)]
        )
        return try rows.map { row in
            InboxGap(
                stream: try row.string("stream"), head: try row.int64("head"), parked: Int(try row.int64("parked")),
                since: Timestamp(milliseconds: try row.int64("gap_since"))
            )
        }
    }
}



/// The inbox statements that backends also run as prepared statements.
package enum InboxSQL {
    /// Creates the stream at head 0 if absent and returns it; an upsert that always updates locks
    /// the row (PostgreSQL) and returns it in one statement.
    package static let readStreamSQL = "SELECT head, parked, gap_since FROM unrace_inbox_streams WHERE stream = ?"

    package static let lockStreamSQL = """
        INSERT INTO unrace_inbox_streams (stream, head, parked) VALUES (?, 0, 0)
        ON CONFLICT (stream) DO UPDATE SET stream = excluded.stream
        RETURNING head, parked, gap_since
        """

    /// Records an event and moves its stream, in one statement (PostgreSQL).
    package static let recordAppliedSQL = """
        WITH recorded AS (
          INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING stream)
        UPDATE unrace_inbox_streams SET head = ?, parked = ?, gap_since = ?
        WHERE stream = (SELECT stream FROM recorded)
        """

    package static func recordAppliedValues(
        _ event: InboxEvent, _ status: InboxEventStatus, _ reason: String?, _ now: Timestamp, _ stream: StreamHead
    ) -> [SQLValue] {
        eventValues(event, status, reason, now) + [
            .integer(stream.head), .int(stream.parked), stream.gapSince.map { .integer($0.milliseconds) } ?? .null,
        ]
    }

    package static func eventValues(_ event: InboxEvent, _ status: InboxEventStatus, _ reason: String?, _ now: Timestamp) -> [SQLValue] {
        [
            .text(event.id), .text(event.stream), .integer(event.sequence), .text(event.type), .blob(event.payload),
            .text(status.rawValue), reason.map(SQLValue.text) ?? .null, .integer(now.milliseconds),
        ]
    }

}

/// The lifecycle state of one entity, kept for the lifecycle guard.
package struct SQLLifecycleRows<T: SQLTransaction> {
    let tx: T
    let lockClause: String

    package init(_ tx: T, lockClause: String) {
        self.tx = tx
        self.lockClause = lockClause
    }

    package func state(lifecycle: String, entity: String) async throws -> String? {
        let rows = try await tx.query(
            "SELECT state FROM unrace_lifecycle_states WHERE lifecycle = ? AND entity = ? \(lockClause)",
            [.text(lifecycle), .text(entity)]
        )
        return try rows.first?.string("state")
    }

    package func save(lifecycle: String, entity: String, state: String, existed: Bool, now: Timestamp) async throws {
        if existed {
            try await tx.execute(
                "UPDATE unrace_lifecycle_states SET state = ?, updated_at = ? WHERE lifecycle = ? AND entity = ?",
                [.text(state), .integer(now.milliseconds), .text(lifecycle), .text(entity)]
            )
        } else {
            try await tx.execute(
                "INSERT INTO unrace_lifecycle_states (lifecycle, entity, state, updated_at) VALUES (?, ?, ?, ?)",
                [.text(lifecycle), .text(entity), .text(state), .integer(now.milliseconds)]
            )
        }
    }

    /// Reads, decides and writes one entity's lifecycle move.
    package func transition(_ lifecycle: Lifecycle, name: String, entity: String, event: String, now: Timestamp) async throws -> Lifecycle.Decision {
        let current = try await state(lifecycle: name, entity: entity)
        let decision = lifecycle.applyWithPlaceholder(event, to: current)
        if case .moved(_, let target) = decision {
            try await save(lifecycle: name, entity: entity, state: target, existed: current != nil, now: now)
        }
        return decision
    }
}

/// The schema of the inbox and lifecycle tables; `blob` and `bigint` name the backend's types.
package enum InboxSchema {
    /// - Parameters:
    ///   - blob: the backend's byte-string type.
    ///   - keyedTable: appended to tables with a primary key (`WITHOUT ROWID` on SQLite, which then
    ///     stores each row once, in its key's B-tree).
    package static func statements(blob: String, keyedTable: String = "") -> [String] {
        [
            """
            CREATE TABLE unrace_inbox_streams (
              stream TEXT PRIMARY KEY, head BIGINT NOT NULL CHECK (head >= 0),
              parked INTEGER NOT NULL CHECK (parked >= 0), gap_since BIGINT
            )\(keyedTable)
            """,
            """
            CREATE TABLE unrace_inbox_events (
              event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, sequence BIGINT NOT NULL CHECK (sequence >= 1),
              type TEXT NOT NULL, payload \(blob),
              status TEXT NOT NULL CHECK (status IN ('applied', 'rejected', 'parked', 'skipped')),
              reason TEXT, received_at BIGINT NOT NULL,
              UNIQUE (stream, sequence)
            )\(keyedTable)
            """,
            "CREATE INDEX unrace_inbox_gaps ON unrace_inbox_streams (gap_since) WHERE parked > 0",
            """
            CREATE TABLE unrace_lifecycle_states (
              lifecycle TEXT NOT NULL, entity TEXT NOT NULL, state TEXT NOT NULL, updated_at BIGINT NOT NULL,
              PRIMARY KEY (lifecycle, entity)
            )\(keyedTable)
            """,
        ]
    }
}
