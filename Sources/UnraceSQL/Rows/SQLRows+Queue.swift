public import Unrace
public import UnraceCore

/// `QueueRows` in SQL.
extension SQLRows: QueueRows {
    static var queueColumns: String {
        "position, queue, id, ordering_key, sequence, payload, state, attempts, max_attempts, visible_at, leased_by, last_error, enqueued_at, completed_at"
    }

    public func queueMessages(queue: String, ids: [String], lock: Bool) async throws -> [String: QueueMessage] {
        var found: [String: QueueMessage] = [:]
        for chunk in stride(from: 0, to: ids.count, by: 500) {
            let part = ids[chunk..<min(chunk + 500, ids.count)]
            let rows = try await select(
                "SELECT \(Self.queueColumns) FROM unrace_queue_messages WHERE queue = ? AND id IN (\(SQLText.placeholders(part.count))) ORDER BY position",
                [.text(queue)] + part.map { .text($0) },
                lock: lock
            )
            for row in rows {
                let message = try Self.decodeQueueMessage(row)
                found[message.id] = message
            }
        }
        return found
    }

    public func insertQueueMessage(_ message: QueueMessage) async throws {
        try await tx.execute(
            """
            INSERT INTO unrace_queue_messages (queue, id, ordering_key, sequence, payload, state, attempts, max_attempts,
              visible_at, leased_by, last_error, enqueued_at, completed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .text(message.queue), .text(message.id), message.orderingKey.map(SQLValue.text) ?? .null,
                message.sequence.map(SQLValue.integer) ?? .null, .blob(message.payload), .text(message.state.rawValue),
                .integer(message.attempts), .integer(message.maxAttempts), .integer(message.visibleAt.milliseconds),
                message.leasedBy.map(SQLValue.text) ?? .null, message.lastError.map(SQLValue.text) ?? .null,
                .integer(message.enqueuedAt.milliseconds), message.completedAt.map { .integer($0.milliseconds) } ?? .null,
            ]
        )
    }

    public func nextQueueSequence(queue: String, key: String) async throws -> Int64 {
        let rows = try await tx.query(
            """
            INSERT INTO unrace_queue_sequences (queue, key, last_sequence) VALUES (?, ?, 1)
            ON CONFLICT (queue, key) DO UPDATE SET last_sequence = unrace_queue_sequences.last_sequence + 1 RETURNING last_sequence
            """,
            [.text(queue), .text(key)]
        )
        return try rows[0].int64("last_sequence")
    }

    public func leasableQueueMessages(queue: String, at now: Timestamp, limit: Int) async throws -> [QueueMessage] {
        try await tx.query(
            """
            SELECT \(Self.queueColumns) FROM unrace_queue_messages
            WHERE queue = ? AND state IN ('ready', 'leased') AND visible_at <= ? ORDER BY visible_at, position LIMIT ?\(dialect.skipLockedClause)
            """,
            [.text(queue), .integer(now.milliseconds), .int(limit)]
        ).map(Self.decodeQueueMessage)
    }

    public func saveQueueMessage(_ message: QueueMessage) async throws {
        try await write(
            """
            UPDATE unrace_queue_messages SET state = ?, attempts = ?, max_attempts = ?, visible_at = ?, leased_by = ?, last_error = ?,
              completed_at = ?
            WHERE queue = ? AND id = ?
            """,
            [
                .text(message.state.rawValue), .integer(message.attempts), .integer(message.maxAttempts),
                .integer(message.visibleAt.milliseconds),
                message.leasedBy.map(SQLValue.text) ?? .null, message.lastError.map(SQLValue.text) ?? .null,
                message.completedAt.map { .integer($0.milliseconds) } ?? .null, .text(message.queue), .text(message.id),
            ]
        )
    }

    public func queueMessages(
        queue: String,
        state: QueueMessageState,
        completedBefore: Timestamp?,
        limit: Int
    ) async throws -> [QueueMessage] {
        // The state as a literal (one of four fixed words), so the partial index on done and dead
        // messages serves the query.
        var sql = "SELECT \(Self.queueColumns) FROM unrace_queue_messages WHERE queue = ? AND state = '\(state.rawValue)'"
        var arguments: [SQLValue] = [.text(queue)]
        if let completedBefore {
            sql += " AND completed_at <= ?"
            arguments.append(.integer(completedBefore.milliseconds))
        }
        return try await tx.query(sql + " ORDER BY completed_at, position LIMIT ?", arguments + [.int(limit)]).map(Self.decodeQueueMessage)
    }

    public func deleteCompletedQueueMessages(queue: String, positions: [Int64]) async throws -> Int {
        var deleted = 0
        for chunk in stride(from: 0, to: positions.count, by: 500) {
            let part = positions[chunk..<min(chunk + 500, positions.count)]
            // RETURNING counts the rows this statement deleted: on PostgreSQL a concurrent purge
            // may have deleted some of those this step read.
            deleted += try await tx.query(
                "DELETE FROM unrace_queue_messages WHERE queue = ? AND state = 'done' AND position IN (\(SQLText.placeholders(part.count))) RETURNING position",
                [.text(queue)] + part.map { .integer($0) }
            ).count
        }
        return deleted
    }

    public func queueDepth(queue: String) async throws -> QueueDepth {
        var depth = QueueDepth()
        for row in try await tx.query(
            "SELECT state, COUNT(*) AS n FROM unrace_queue_messages WHERE queue = ? GROUP BY state",
            [.text(queue)]
        ) {
            let count = Int(try row.int64("n"))
            switch QueueMessageState(rawValue: try row.string("state")) {
            case .ready: depth.ready = count
            case .leased: depth.leased = count
            case .done: depth.done = count
            case .dead: depth.dead = count
            case nil: throw UnraceError(.storeFailure, "a stored queue message has an unknown state")
            }
        }
        return depth
    }

    static func decodeQueueMessage(_ row: SQLRow) throws -> QueueMessage {
        guard let state = QueueMessageState(rawValue: try row.string("state")) else {
            throw UnraceError(.storeFailure, "a stored queue message has an unknown state")
        }
        return QueueMessage(
            queue: try row.string("queue"),
            id: try row.string("id"),
            orderingKey: row["ordering_key"].string,
            sequence: row.optionalInt64("sequence"),
            payload: row.optionalBytes("payload") ?? [],
            state: state,
            attempts: try row.int64("attempts"),
            maxAttempts: try row.int64("max_attempts"),
            visibleAt: Timestamp(milliseconds: try row.int64("visible_at")),
            leasedBy: row["leased_by"].string,
            lastError: row["last_error"].string,
            enqueuedAt: Timestamp(milliseconds: try row.int64("enqueued_at")),
            completedAt: row.optionalInt64("completed_at").map(Timestamp.init(milliseconds:)),
            position: try row.int64("position")
        )
    }
}
