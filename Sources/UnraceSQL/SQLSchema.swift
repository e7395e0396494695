/// The tables of every SQL store, as versioned migrations; `dialect` picks the column types.
///
/// Versions are never edited once released: a change is a new version.
package enum SQLSchema {

    package static func migrations(_ dialect: SQLDialect) -> SchemaMigrations {
        let blob = dialect.blobType
        let integer = dialect.integerType
        let keyed = dialect.keyedTableSuffix
        return SchemaMigrations(
            [
                .init(
                    version: 1,
                    statements: [
                        """
                        CREATE TABLE unrace_operations (
                          scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint \(blob) NOT NULL,
                          state TEXT NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'released')),
                          token \(integer) NOT NULL CHECK (token >= 1), holder TEXT NOT NULL, lease_until \(integer) NOT NULL,
                          recovery_point \(blob), outcome \(blob), created_at \(integer) NOT NULL, completed_at \(integer), expires_at \(integer),
                          PRIMARY KEY (scope, key)
                        )\(keyed)
                        """,
                        "CREATE INDEX unrace_operations_expiry ON unrace_operations (expires_at) WHERE expires_at IS NOT NULL",
                    ]
                ),
                .init(
                    version: 2,
                    statements: [
                        """
                        CREATE TABLE unrace_inbox_streams (
                          stream TEXT PRIMARY KEY, head BIGINT NOT NULL CHECK (head >= 0),
                          parked INTEGER NOT NULL CHECK (parked >= 0), gap_since BIGINT
                        )\(keyed)
                        """,
                        """
                        CREATE TABLE unrace_inbox_events (
                          event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, sequence BIGINT NOT NULL CHECK (sequence >= 1),
                          type TEXT NOT NULL, payload \(blob),
                          status TEXT NOT NULL CHECK (status IN ('applied', 'rejected', 'parked', 'skipped')),
                          reason TEXT, received_at BIGINT NOT NULL,
                          UNIQUE (stream, sequence)
                        )\(keyed)
                        """,
                        "CREATE INDEX unrace_inbox_gaps ON unrace_inbox_streams (gap_since) WHERE parked > 0",
                        """
                        CREATE TABLE unrace_lifecycle_states (
                          lifecycle TEXT NOT NULL, entity TEXT NOT NULL, state TEXT NOT NULL, updated_at BIGINT NOT NULL,
                          PRIMARY KEY (lifecycle, entity)
                        )\(keyed)
                        """,
                    ]
                ),
                .init(
                    version: 3,
                    statements: [
                        """
                        CREATE TABLE unrace_records (
                          collection TEXT NOT NULL, id TEXT NOT NULL, version BIGINT NOT NULL CHECK (version >= 1),
                          value \(blob) NOT NULL, updated_at BIGINT NOT NULL, PRIMARY KEY (collection, id)
                        )\(keyed)
                        """,
                        """
                        CREATE TABLE unrace_counters (
                          name TEXT PRIMARY KEY, value BIGINT NOT NULL, floor BIGINT NOT NULL, ceiling BIGINT NOT NULL,
                          CHECK (value >= floor AND value <= ceiling)
                        )\(keyed)
                        """,
                        "CREATE TABLE unrace_quotas (name TEXT PRIMARY KEY, window_start BIGINT NOT NULL, used BIGINT NOT NULL)\(keyed)",
                        """
                        CREATE TABLE unrace_resources (
                          name TEXT PRIMARY KEY, capacity BIGINT NOT NULL, held BIGINT NOT NULL, confirmed BIGINT NOT NULL,
                          CHECK (held >= 0 AND confirmed >= 0 AND held + confirmed <= capacity)
                        )\(keyed)
                        """,
                        """
                        CREATE TABLE unrace_holds (
                          key TEXT PRIMARY KEY, resource TEXT NOT NULL, units BIGINT NOT NULL CHECK (units >= 1),
                          state TEXT NOT NULL CHECK (state IN ('held', 'confirmed', 'released')), expires_at BIGINT NOT NULL
                        )\(keyed)
                        """,
                        "CREATE INDEX unrace_holds_live ON unrace_holds (resource, expires_at) WHERE state = 'held'",
                    ]
                ),
                .init(
                    version: 4,
                    statements: [
                        """
                        CREATE TABLE unrace_accounts (
                          id TEXT PRIMARY KEY, ledger BIGINT NOT NULL, code BIGINT NOT NULL, flags BIGINT NOT NULL,
                          debits_pending BIGINT NOT NULL, debits_posted BIGINT NOT NULL,
                          credits_pending BIGINT NOT NULL, credits_posted BIGINT NOT NULL, created_at BIGINT NOT NULL,
                          CHECK (debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0),
                          CHECK ((flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted),
                          CHECK ((flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted)
                        )\(keyed)
                        """,
                        """
                        CREATE TABLE unrace_transfers (
                          id TEXT PRIMARY KEY, debit_account TEXT NOT NULL, credit_account TEXT NOT NULL,
                          amount BIGINT NOT NULL, ledger BIGINT NOT NULL, code BIGINT NOT NULL, flags BIGINT NOT NULL,
                          pending_id TEXT, timeout_ms BIGINT NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT
                        )\(keyed)
                        """,
                        "CREATE TABLE unrace_transfer_failures (id TEXT PRIMARY KEY, result TEXT NOT NULL, created_at BIGINT NOT NULL)\(keyed)",
                    ]
                ),
                // Every operation record now has an expiry (running ones: the lease's end plus the
                // retention), purged per scope; expired pending transfers are found by their timeout.
                .init(
                    version: 5,
                    statements: [
                        "DROP INDEX unrace_operations_expiry",
                        "CREATE INDEX unrace_operations_scope_expiry ON unrace_operations (scope, expires_at) WHERE expires_at IS NOT NULL",
                        "CREATE INDEX unrace_transfers_pending ON unrace_transfers (expires_at) WHERE state = 'pending'",
                    ]
                ),
                // Running and released records written before version 5 had no expiry: they expire
                // 24 hours (the default retention) after their lease ended.
                .init(
                    version: 6,
                    statements: [
                        "UPDATE unrace_operations SET expires_at = lease_until + 86400000 WHERE expires_at IS NULL"
                    ]
                ),
                // The durable queue and its outbox: messages (FIFO by position within visibility) and
                // the per-ordering-key sequence counters.
                .init(
                    version: 7,
                    statements: [
                        """
                        CREATE TABLE unrace_queue_messages (
                          position \(dialect.identityColumn),
                          queue TEXT NOT NULL, id TEXT NOT NULL, ordering_key TEXT, sequence BIGINT, payload \(blob) NOT NULL,
                          state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'done', 'dead')),
                          attempts BIGINT NOT NULL CHECK (attempts >= 0), max_attempts BIGINT NOT NULL CHECK (max_attempts >= 1),
                          visible_at BIGINT NOT NULL, leased_by TEXT, last_error TEXT, enqueued_at BIGINT NOT NULL, completed_at BIGINT,
                          UNIQUE (queue, id)
                        )
                        """,
                        "CREATE INDEX unrace_queue_visible ON unrace_queue_messages (queue, visible_at, position) WHERE state IN ('ready', 'leased')",
                        "CREATE INDEX unrace_queue_completed ON unrace_queue_messages (queue, state, completed_at) WHERE state IN ('done', 'dead')",
                        """
                        CREATE TABLE unrace_queue_sequences (
                          queue TEXT NOT NULL, key TEXT NOT NULL, last_sequence BIGINT NOT NULL CHECK (last_sequence >= 1),
                          PRIMARY KEY (queue, key)
                        )\(keyed)
                        """,
                    ]
                ),
                // A queue's inbox streams and event ids move to the reserved namespace (`$queue/…`),
                // where no caller's event can reach them: a stream that was a queue's (it has a
                // sequence counter) keeps its head and its events under the new name.
                .init(
                    version: 8,
                    statements: [
                        """
                        UPDATE unrace_inbox_events SET event_id = '$' || event_id, stream = '$' || stream
                        WHERE stream IN (SELECT queue || '/' || key FROM unrace_queue_sequences)
                        """,
                        """
                        UPDATE unrace_inbox_streams SET stream = '$' || stream
                        WHERE stream IN (SELECT queue || '/' || key FROM unrace_queue_sequences)
                        """,
                    ]
                ),
                // Purges across scopes (a middleware's per-principal scopes are not enumerable): one
                // index on the expiry serves both the per-scope and the every-scope purge.
                .init(
                    version: 9,
                    statements: [
                        "DROP INDEX unrace_operations_scope_expiry",
                        "CREATE INDEX unrace_operations_expiry ON unrace_operations (expires_at) WHERE expires_at IS NOT NULL",
                    ]
                ),
                // An inbox event's position is indexed only while it is parked: positions up to a
                // stream's head are all taken (applied, rejected or skipped events, never deleted),
                // so only parked ones are ever looked up, and an in-order event writes no index
                // entry beside its row. Parked positions stay unique.
                .init(
                    version: 10,
                    statements: (dialect.dropsConstraints ? [Self.inboxPositionConstraintDropped] : Self.inboxEventsRebuilt(dialect))
                        + [
                            "CREATE UNIQUE INDEX IF NOT EXISTS unrace_inbox_parked ON unrace_inbox_events (stream, sequence) WHERE status = 'parked'"
                        ]
                ),
            ],
            tableExistsQuery: dialect.tableExistsQuery
        )
    }

    /// Drops `unrace_inbox_events`' unique constraint on `(stream, sequence)` whatever PostgreSQL
    /// named it (found by its columns, in the table the search path names), so the migration never
    /// records itself done while the constraint stays.
    static let inboxPositionConstraintDropped = """
        DO $unrace$
        DECLARE doomed text;
        BEGIN
          FOR doomed IN
            SELECT c.conname FROM pg_catalog.pg_constraint AS c
            WHERE c.conrelid = 'unrace_inbox_events'::regclass AND c.contype = 'u'
              AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text) FROM unnest(c.conkey) AS k
                   JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k) = ARRAY['sequence', 'stream']
          LOOP
            EXECUTE format('ALTER TABLE unrace_inbox_events DROP CONSTRAINT %I', doomed);
          END LOOP;
        END
        $unrace$
        """

    /// `unrace_inbox_events` without its `UNIQUE (stream, sequence)`, for a database that cannot drop
    /// a constraint: a copy of the table under the same name (its rows, in one transaction).
    static func inboxEventsRebuilt(_ dialect: SQLDialect) -> [String] {
        let columns = "event_id, stream, sequence, type, payload, status, reason, received_at"
        return [
            """
            CREATE TABLE unrace_inbox_events_v10 (
              event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, sequence BIGINT NOT NULL CHECK (sequence >= 1),
              type TEXT NOT NULL, payload \(dialect.blobType),
              status TEXT NOT NULL CHECK (status IN ('applied', 'rejected', 'parked', 'skipped')),
              reason TEXT, received_at BIGINT NOT NULL
            )\(dialect.keyedTableSuffix)
            """,
            "INSERT INTO unrace_inbox_events_v10 (\(columns)) SELECT \(columns) FROM unrace_inbox_events",
            "DROP TABLE unrace_inbox_events",
            "ALTER TABLE unrace_inbox_events_v10 RENAME TO unrace_inbox_events",
        ]
    }
}
