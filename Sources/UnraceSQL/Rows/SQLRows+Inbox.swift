public import Unrace
public import UnraceCore

/// `InboxRows` in SQL.
extension SQLRows: InboxRows {
    public func lockStream(_ stream: String, eventID: String) async throws -> (head: StreamHead, stored: InboxPosition?) {
        let row: SQLRow?
        if dialect.hasConcurrentWriters {
            // Create-or-lock the stream row in one upsert, reading the event id with it.
            row = try await select(SQLText.lockStreamSQL, [.text(stream), .text(eventID), .text(eventID)], lock: false).first
        } else {
            row = try await tx.query(SQLText.readStreamSQL, [.text(stream), .text(eventID)]).first
        }
        let head = StreamHead(
            stream: stream,
            head: row?.optionalInt64("head") ?? 0,
            parked: Int(row?.optionalInt64("parked") ?? 0),
            gapSince: row?.optionalInt64("gap_since").map(Timestamp.init(milliseconds:))
        )
        guard let row, let storedStream = row["event_stream"].string, let sequence = row.optionalInt64("event_sequence") else {
            return (head, nil)
        }
        return (head, InboxPosition(stream: storedStream, sequence: sequence))
    }

    public func storedInboxContent(eventID: String) async throws -> (type: String, payload: [UInt8])? {
        guard let row = try await tx.query("SELECT type, payload FROM unrace_inbox_events WHERE event_id = ?", [.text(eventID)]).first
        else { return nil }
        return (type: try row.string("type"), payload: row.optionalBytes("payload") ?? [])
    }

    public func storedInboxEvents(ids: [String]) async throws -> [String: (stream: String, payload: [UInt8])] {
        var found: [String: (stream: String, payload: [UInt8])] = [:]
        for chunk in stride(from: 0, to: ids.count, by: 500) {
            let part = ids[chunk..<min(chunk + 500, ids.count)]
            let rows = try await tx.query(
                "SELECT event_id, stream, payload FROM unrace_inbox_events WHERE event_id IN (\(SQLText.placeholders(part.count)))",
                part.map { .text($0) }
            )
            for row in rows {
                found[try row.string("event_id")] = (stream: try row.string("stream"), payload: row.optionalBytes("payload") ?? [])
            }
        }
        return found
    }

    /// Read from the parked events' index (past the head every stored event is parked).
    public func isPositionTaken(stream: String, sequence: Int64) async throws -> Bool {
        !(try await tx.query(
            InboxSQL.parkedPositionSQL,
            [.text(stream), .integer(sequence)]
        ))
        .isEmpty
    }

    public func insertInboxEvent(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try await insertInboxEvents([event], status: status, reason: reason, now: now)
    }

    /// 500 events a statement.
    public func insertInboxEvents(_ events: [InboxEvent], status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        for chunk in stride(from: 0, to: events.count, by: 500) {
            let part = events[chunk..<min(chunk + 500, events.count)]
            try await write(
                part.count == 1
                    ? InboxSQL.insertOneEventSQL
                    : InboxSQL.insertEventsSQL + Array(repeating: InboxSQL.eventRow, count: part.count).joined(separator: ", "),
                part.flatMap { InboxSQL.eventValues($0, status, reason, now) }
            )
        }
    }

    public func recordApplied(
        _ event: InboxEvent,
        status: InboxEventStatus,
        reason: String?,
        now: Timestamp,
        stream: StreamHead
    ) async throws {
        if dialect.combinesWrites {
            try await tx.execute(SQLText.recordAppliedSQL, InboxSQL.recordAppliedValues(event, status, reason, now, stream))
        } else {
            try await insertInboxEvent(event, status: status, reason: reason, now: now)
            try await saveStream(stream)
        }
    }

    public func setInboxEventStatus(_ event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws {
        try await write(
            "UPDATE unrace_inbox_events SET status = ?, reason = ? WHERE event_id = ?",
            [.text(status.rawValue), reason.map(SQLValue.text) ?? .null, .text(event.id)]
        )
    }

    public func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent? {
        let rows = try await tx.query(
            "SELECT event_id, type, payload FROM unrace_inbox_events WHERE stream = ? AND sequence = ? AND status = 'parked'",
            [.text(stream), .integer(sequence)]
        )
        guard let row = rows.first else { return nil }
        return try InboxEvent(
            stored: row.string("event_id"),
            stream: stream,
            sequence: sequence,
            type: row.string("type"),
            payload: row.optionalBytes("payload") ?? []
        )
    }

    public func lowestParkedSequence(stream: String) async throws -> Int64? {
        try await tx.query(
            "SELECT MIN(sequence) AS lowest FROM unrace_inbox_events WHERE stream = ? AND status = 'parked'",
            [.text(stream)]
        ).first?.optionalInt64("lowest")
    }

    public func saveStream(_ head: StreamHead) async throws {
        try await write(
            """
            INSERT INTO unrace_inbox_streams (head, parked, gap_since, stream) VALUES (?, ?, ?, ?)
            ON CONFLICT (stream) DO UPDATE SET head = excluded.head, parked = excluded.parked, gap_since = excluded.gap_since
            """,
            [.integer(head.head), .int(head.parked), head.gapSince.map { .integer($0.milliseconds) } ?? .null, .text(head.stream)]
        )
    }

    public func streamHead(_ stream: String) async throws -> Int64 {
        try await tx.query("SELECT head FROM unrace_inbox_streams WHERE stream = ?", [.text(stream)]).first?.optionalInt64("head") ?? 0
    }

    public func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        let rows = try await tx.query(
            """
            SELECT stream, head, parked, gap_since FROM unrace_inbox_streams
            WHERE parked > 0 AND gap_since <= ? ORDER BY gap_since, stream\(byteOrder) LIMIT ?
            """,
            [.integer(cutoff.milliseconds), .int(limit)]
        )
        return try rows.map { row in
            InboxGap(
                stream: try row.string("stream"),
                head: try row.int64("head"),
                parked: Int(try row.int64("parked")),
                since: Timestamp(milliseconds: try row.int64("gap_since"))
            )
        }
    }
}

/// The inbox statements, shared with backends that run some as prepared statements.
package enum InboxSQL {
    static let insertEventsSQL =
        "INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at) VALUES "
    static let eventRow = "(\(SQLText.placeholders(8)))"
    /// The statement of one event (every in-order receive), built once.
    static let insertOneEventSQL = insertEventsSQL + eventRow
    /// Whether an event is parked at a position: its `status` condition is the index's, so
    /// `unrace_inbox_parked` answers it (no other index covers positions).
    package static let parkedPositionSQL =
        "SELECT 1 AS taken FROM unrace_inbox_events WHERE stream = ? AND sequence = ? AND status = 'parked'"

    package static func recordAppliedValues(
        _ event: InboxEvent,
        _ status: InboxEventStatus,
        _ reason: String?,
        _ now: Timestamp,
        _ stream: StreamHead
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
