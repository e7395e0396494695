package import UnraceCore

/// The `unrace_operations` table, read and written through any ``SQLTransaction``.
///
/// SQLite and PostgreSQL share this code: each runs it inside its own transaction and adds only
/// what is native to it (PostgreSQL locks the row with `FOR UPDATE` and has a one-statement fast
/// path). The ownership rules themselves are ``ClaimDecision`` and ``Fence``, in the core.
package struct OperationTable: Sendable {
    /// Appended to the read that precedes a decision: `FOR UPDATE` on PostgreSQL, where
    /// concurrent transactions must queue on the row; empty on SQLite, whose write transactions
    /// are already exclusive.
    package var lockClause: String

    package init(lockClause: String) { self.lockClause = lockClause }

    package static let name = "unrace_operations"

    static let columns =
        "scope, key, fingerprint, state, token, holder, lease_until, recovery_point, outcome, created_at, completed_at, expires_at"

    package func fetch(_ tx: some SQLTransaction, scope: Scope, key: OperationKey, lock: Bool) async throws -> OperationRecord? {
        let (sql, arguments) = select(scope: scope, key: key, lock: lock)
        return try await tx.query(sql, arguments).first.map(Self.decode)
    }

    // A step's record write is its last statement and nothing reads it back before the commit,
    // so it may travel with the commit.
    package func insert(_ tx: some SQLTransaction, _ record: OperationRecord) async throws {
        let (sql, arguments) = Self.insert(record)
        try await tx.executeBeforeCommit(sql, arguments)
    }

    package func update(_ tx: some SQLTransaction, _ record: OperationRecord) async throws {
        let (sql, arguments) = Self.update(record)
        try await tx.executeBeforeCommit(sql, arguments)
    }

    // MARK: Statements, for stores that run them through their own driver

    /// The statement that reads one record (locking it where the backend locks rows).
    package func select(scope: Scope, key: OperationKey, lock: Bool) -> (String, [SQLValue]) {
        let sql = lock && !lockClause.isEmpty ? selectForUpdateSQL : Self.selectSQL
        return (sql, [.text(scope.rawValue), .text(key.rawValue)])
    }

    private var selectForUpdateSQL: String { Self.selectSQL + " " + lockClause }

    static let selectSQL = "SELECT \(columns) FROM \(name) WHERE scope = ? AND key = ?"

    package static let insertSQL = "INSERT INTO \(name) (\(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

    /// Inserts a new record unless the key has one; returns the token of an inserted row.
    package static let insertIfAbsentSQL = insertSQL + " ON CONFLICT (scope, key) DO NOTHING RETURNING token"

    /// The statement that inserts a new record.
    package static func insert(_ record: OperationRecord) -> (String, [SQLValue]) {
        (insertSQL, values(record))
    }

    static let updateSQL = """
        UPDATE \(name) SET fingerprint = ?, state = ?, token = ?, holder = ?, lease_until = ?,
        recovery_point = ?, outcome = ?, created_at = ?, completed_at = ?, expires_at = ?
        WHERE scope = ? AND key = ?
        """

    /// The statement that rewrites an existing record.
    package static func update(_ record: OperationRecord) -> (String, [SQLValue]) {
        var arguments = Array(values(record).dropFirst(2))
        arguments += [.text(record.scope.rawValue), .text(record.key.rawValue)]
        return (updateSQL, arguments)
    }

    /// Claim, run and complete in the caller's transaction: the decide-then-act path.
    package func performOnce<T: SQLTransaction>(
        _ tx: T,
        _ request: ClaimRequest,
        retention: Duration,
        _ body: (T, FencingToken) async throws -> Completion
    ) async throws -> PerformStep {
        let existing = try await fetch(tx, scope: request.scope, key: request.key, lock: true)
        let decision = ClaimDecision.decide(existing: existing, request: request)
        guard let acquired = decision.acquiredRecord(for: request, existing: existing) else {
            return .notAcquired(decision)
        }
        let completion = try await body(tx, acquired.token)
        let record = completion.apply(to: acquired, now: request.now, retention: retention)
        if existing == nil { try await insert(tx, record) } else { try await update(tx, record) }
        return .performed(record)
    }

    /// Claim for a lease in the caller's transaction.
    package func claim(_ tx: some SQLTransaction, _ request: ClaimRequest) async throws -> ClaimStep {
        let existing = try await fetch(tx, scope: request.scope, key: request.key, lock: true)
        let decision = ClaimDecision.decide(existing: existing, request: request)
        guard let acquired = decision.acquiredRecord(for: request, existing: existing) else {
            return .notAcquired(decision)
        }
        if existing == nil { try await insert(tx, acquired) } else { try await update(tx, acquired) }
        return .acquired(acquired)
    }

    /// A fenced holder write in the caller's transaction. Throws ``UnraceError/Code/fenced`` before
    /// running `body` when the token is stale, so the caller's transaction rolls back.
    package func write<T: SQLTransaction>(
        _ tx: T,
        _ write: HolderWrite,
        scope: Scope,
        key: OperationKey,
        token: FencingToken,
        now: Timestamp,
        retention: Duration,
        _ body: (T) async throws -> Void
    ) async throws -> OperationRecord {
        let current = try await fetch(tx, scope: scope, key: key, lock: true)
        guard Fence.admits(current, token: token), let current else {
            throw Fence.error(token: token, current: current)
        }
        try await body(tx)
        let record = write.apply(to: current, now: now, retention: retention)
        try await update(tx, record)
        return record
    }

    package func purgeExpired(_ tx: some SQLTransaction, now: Timestamp, limit: Int) async throws -> Int {
        // A bounded batch: pick the victims by primary key, then delete exactly those.
        let rows = try await tx.query(
            """
            DELETE FROM \(Self.name) WHERE (scope, key) IN (
              SELECT scope, key FROM \(Self.name)
              WHERE expires_at IS NOT NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?)
            RETURNING 1
            """,
            [.integer(now.milliseconds), .int(limit)]
        )
        return rows.count
    }

    package static func values(_ record: OperationRecord) -> [SQLValue] {
        [
            .text(record.scope.rawValue), .text(record.key.rawValue), .blob(record.fingerprint.bytes),
            .text(record.state.rawValue), .integer(record.token.value), .text(record.holder),
            .integer(record.leaseUntil.milliseconds), record.recoveryPoint.map(SQLValue.blob) ?? .null,
            record.outcome.map(SQLValue.blob) ?? .null, .integer(record.createdAt.milliseconds),
            record.completedAt.map { .integer($0.milliseconds) } ?? .null,
            record.expiresAt.map { .integer($0.milliseconds) } ?? .null,
        ]
    }

    package static func decode(_ row: SQLRow) throws -> OperationRecord {
        guard let state = OperationState(rawValue: try row.string("state")) else {
            throw UnraceError(.storeFailure, "a stored operation has an unknown state")
        }
        return OperationRecord(
            scope: try Scope(row.string("scope")),
            key: try OperationKey(row.string("key")),
            fingerprint: Fingerprint(rawBytes: row.optionalBytes("fingerprint") ?? []),
            state: state,
            token: FencingToken(try row.int64("token")),
            holder: try row.string("holder"),
            leaseUntil: Timestamp(milliseconds: try row.int64("lease_until")),
            recoveryPoint: row.optionalBytes("recovery_point"),
            outcome: row.optionalBytes("outcome"),
            createdAt: Timestamp(milliseconds: try row.int64("created_at")),
            completedAt: row.optionalInt64("completed_at").map(Timestamp.init(milliseconds:)),
            expiresAt: row.optionalInt64("expires_at").map(Timestamp.init(milliseconds:))
        )
    }
}
