public import Unrace
public import UnraceCore

/// `OperationRows` in SQL.
extension SQLRows: OperationRows {
    public func operation(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await select(SQLText.selectOperationSQL, [.text(scope.rawValue), .text(key.rawValue)], lock: false).first.map(
            Self.decodeOperation
        )
    }

    /// On a store with one writer, a read. On PostgreSQL, the claim: the fresh claim's record
    /// (`ClaimDecision.insert` at the step's time, the database's clock unless given) inserted
    /// unless the key has one, and the time, always. A concurrent claim of the same key waits on
    /// the inserted row until this step ends.
    public func lockOperation(_ claim: ClaimTemplate) async throws -> OperationLock {
        guard dialect.hasConcurrentWriters else {
            return try await operation(scope: claim.scope, key: claim.key).map(OperationLock.existing) ?? .absent
        }
        // A given time past the latest reading is refused before anything is written.
        if let time = clock.time { _ = try time.checkedReading() }
        let readsDatabaseClock = clock.time == nil
        let started = ContinuousClock.now
        // Insert first, so a concurrent duplicate blocks on the row; read the existing record when
        // there is one. A record purged between the two statements sends the claim round again.
        for _ in 1...3 {
            // With a given time the fresh record is computed here (saturating at the ends of
            // time, like every store); on the database's clock the statement adds the lease.
            // Bounded so the statement's `now + …` stays in 64 bits (the database's time is at most
            // Timestamp.latestReading, half the range): a template built by hand may hold any
            // durations, and every store saturates rather than fails.
            let bound = Timestamp.latestReading.milliseconds
            let lease = min(max(claim.lease.wholeMilliseconds, -bound), bound)
            let retention = claim.retention.wholeMilliseconds
            let (sum, overflow) = lease.addingReportingOverflow(retention)
            let leaseAndRetention = min(max(overflow ? (retention < 0 ? .min : .max) : sum, -bound), bound)
            let given = clock.time.flatMap { ClaimDecision.insert.acquiredRecord(for: claim.request(at: $0), existing: nil) }
            let row = try await tx.query(
                SQLText.reserveOperationSQL,
                [
                    clock.time.map { .integer($0.milliseconds) } ?? .null, .text(claim.scope.rawValue), .text(claim.key.rawValue),
                    .blob(claim.fingerprint.bytes), .text(claim.holder),
                    given.map { .integer($0.leaseUntil.milliseconds) } ?? .null, .integer(lease),
                    given?.expiresAt.map { .integer($0.milliseconds) } ?? .null,
                    .integer(leaseAndRetention),
                ]
            )[0]
            let now = clock.set(try row.int64("unrace_now"))
            if try row.int64("inserted") == 1 {
                // The insert's own RETURNING reads the clock after any wait on another claim's row.
                if readsDatabaseClock, let insertedAt = row.optionalInt64("inserted_at"),
                    insertedAt &- now.milliseconds >= stepTimeRereadAfterWait.wholeMilliseconds
                {
                    try await reserveAgain(claim, at: clock.moveOn(to: insertedAt))
                }
                return .reserved
            }
            if let record = try await lockOperation(scope: claim.scope, key: claim.key) {
                // Only a claim that may take the key (running or released) depends on the time;
                // a completed one is replayed whatever the time.
                if !record.state.isTerminal, ContinuousClock.now - started >= stepTimeRereadAfterWait {
                    _ = try await timeAfterWait()
                }
                return .existing(record)
            }
        }
        throw UnraceError(.retryLimitReached, "an operation record kept disappearing between a claim's statements")
    }

    /// The reserved record again, as the claim decides it at `time` (after its wait).
    private func reserveAgain(_ claim: ClaimTemplate, at time: Timestamp) async throws {
        guard let record = ClaimDecision.insert.acquiredRecord(for: claim.request(at: time), existing: nil) else { return }
        try await tx.execute(
            SQLText.updateOperationSQL,
            Array(Self.operationValues(record).dropFirst(2)) + [.text(claim.scope.rawValue), .text(claim.key.rawValue)]
        )
    }

    public func lockOperation(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await select(SQLText.selectOperationSQL, [.text(scope.rawValue), .text(key.rawValue)], lock: true).first.map(
            Self.decodeOperation
        )
    }

    public func saveOperation(_ record: OperationRecord, isNew: Bool) async throws {
        if isNew {
            try await write(SQLText.insertOperationSQL, Self.operationValues(record))
        } else {
            try await write(
                SQLText.updateOperationSQL,
                Array(Self.operationValues(record).dropFirst(2)) + [.text(record.scope.rawValue), .text(record.key.rawValue)]
            )
        }
    }

    public func expiredOperations(scope: Scope?, at now: Timestamp, limit: Int) async throws -> [OperationRecord] {
        try await select(
            """
            SELECT \(SQLText.operationColumns) FROM unrace_operations
            WHERE \(scope == nil ? "" : "scope = ? AND ")expires_at IS NOT NULL AND expires_at <= ?
            ORDER BY expires_at, scope\(byteOrder), key\(byteOrder) LIMIT ?
            """,
            (scope.map { [.text($0.rawValue)] } ?? []) + [.integer(now.milliseconds), .int(limit)],
            lock: true
        ).map(Self.decodeOperation)
    }

    public func deleteOperations(scope: Scope, keys: [OperationKey]) async throws {
        for chunk in stride(from: 0, to: keys.count, by: 500) {
            let part = keys[chunk..<min(chunk + 500, keys.count)]
            try await tx.execute(
                "DELETE FROM unrace_operations WHERE scope = ? AND key IN (\(SQLText.placeholders(part.count)))",
                [.text(scope.rawValue)] + part.map { .text($0.rawValue) }
            )
        }
    }

    package static func operationValues(_ record: OperationRecord) -> [SQLValue] {
        [
            .text(record.scope.rawValue), .text(record.key.rawValue), .blob(record.fingerprint.bytes),
            .text(record.state.rawValue), .integer(record.token.value), .text(record.holder),
            .integer(record.leaseUntil.milliseconds), record.recoveryPoint.map(SQLValue.blob) ?? .null,
            record.outcome.map(SQLValue.blob) ?? .null, .integer(record.createdAt.milliseconds),
            record.completedAt.map { .integer($0.milliseconds) } ?? .null,
            record.expiresAt.map { .integer($0.milliseconds) } ?? .null,
        ]
    }

    static func decodeOperation(_ row: SQLRow) throws -> OperationRecord {
        guard let state = OperationState(rawValue: try row.string("state")) else {
            throw UnraceError(.storeFailure, "a stored operation has an unknown state")
        }
        return OperationRecord(
            scope: try Scope(stored: row.string("scope")),
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
