import UnraceCore

/// The statements of ``SQLRows`` that others name too (stores that prepare them, tests).
package enum SQLText {
    static func placeholders(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }

    package static let databaseNowSQL = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    package static let operationColumns =
        "scope, key, fingerprint, state, token, holder, lease_until, recovery_point, outcome, created_at, completed_at, expires_at"
    package static let selectOperationSQL = "SELECT \(operationColumns) FROM unrace_operations WHERE scope = ? AND key = ?"
    package static let insertOperationSQL = "INSERT INTO unrace_operations (\(operationColumns)) VALUES (\(placeholders(12)))"
    package static let updateOperationSQL = """
        UPDATE unrace_operations SET fingerprint = ?, state = ?, token = ?, holder = ?, lease_until = ?,
        recovery_point = ?, outcome = ?, created_at = ?, completed_at = ?, expires_at = ?
        WHERE scope = ? AND key = ?
        """
    package static let reserveOperationSQL = """
        WITH unrace_t AS (SELECT COALESCE(?::bigint, \(databaseNowSQL)) AS now),
        inserted AS (
          INSERT INTO unrace_operations (\(operationColumns))
          SELECT ?, ?, ?, 'running', 1, ?, COALESCE(?::bigint, now + ?::bigint), NULL, NULL, now, NULL, COALESCE(?::bigint, now + ?::bigint)
          FROM unrace_t
          ON CONFLICT (scope, key) DO NOTHING RETURNING \(databaseNowSQL) AS inserted_at)
        SELECT now AS unrace_now, (SELECT COUNT(*) FROM inserted) AS inserted, (SELECT max(inserted_at) FROM inserted) AS inserted_at
        FROM unrace_t
        """
    package static let holdColumns = "key, resource, units, state, expires_at"
    package static let accountColumns = "id, ledger, code, flags, debits_pending, debits_posted, credits_pending, credits_posted"
    package static let transferColumns =
        "id, debit_account, credit_account, amount, ledger, code, flags, pending_id, timeout_ms, state, created_at, expires_at"
    package static let failureColumns = "id, NULL, NULL, 0, 0, 0, 0, NULL, 0, 'failed', 0, NULL"
    package static let readStreamSQL = """
        SELECT s.head, s.parked, s.gap_since, e.stream AS event_stream, e.sequence AS event_sequence
        FROM (SELECT 1) AS unrace_t
        LEFT JOIN unrace_inbox_streams AS s ON s.stream = ?
        LEFT JOIN unrace_inbox_events AS e ON e.event_id = ?
        """
    package static let lockStreamSQL = """
        INSERT INTO unrace_inbox_streams AS s (stream, head, parked) VALUES (?, 0, 0)
        ON CONFLICT (stream) DO UPDATE SET stream = excluded.stream
        RETURNING s.head, s.parked, s.gap_since,
          (SELECT e.stream FROM unrace_inbox_events AS e WHERE e.event_id = ?) AS event_stream,
          (SELECT e.sequence FROM unrace_inbox_events AS e WHERE e.event_id = ?) AS event_sequence
        """
    package static let recordAppliedSQL = """
        WITH recorded AS (
          INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at)
          VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING stream)
        UPDATE unrace_inbox_streams SET head = ?, parked = ?, gap_since = ?
        WHERE stream = (SELECT stream FROM recorded)
        """
}
