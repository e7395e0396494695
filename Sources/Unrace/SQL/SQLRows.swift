public import UnraceCore
import Synchronization

/// ``StoreRows`` over any ``SQLTransaction``: the rows of SQLite and PostgreSQL, in one SQL
/// written for both dialects. It moves rows; Unrace's guards decide.
///
/// The dialects differ only where the engines do:
/// - **Locks.** SQLite runs one write transaction at a time, so a read is a lock. PostgreSQL
///   reads rows a decision depends on `FOR UPDATE`; where the row may be absent and a concurrent
///   step could create it, it inserts first (a claim's reservation, an inbox stream, a lifecycle
///   state) so the concurrent step waits on it.
/// - **Time.** On PostgreSQL, a step whose clock is real time decides on the database's clock,
///   read in the step's first locking statement (or, if the step asks before any, on its own).
/// - **Ordering.** Text keys sort byte-wise (`COLLATE "C"` on PostgreSQL, SQLite's default), so
///   every store picks the same rows for a bounded batch.
public struct SQLRows<T: SQLTransaction>: StoreRows {
    /// The transaction the rows are read and written in.
    public let tx: T
    /// The SQL flavour.
    public let dialect: SQLDialect
    let clock: SQLStepClock
    let bulk: SQLBulkStatements?

    /// Rows in `tx`. `time` is the step's time when the store knows it already (SQLite, a clock
    /// that is not real time); `nil` makes PostgreSQL read its own clock in the step.
    package init(_ tx: T, dialect: SQLDialect, time: Timestamp?, bulk: SQLBulkStatements? = nil) {
        self.tx = tx
        self.dialect = dialect
        self.clock = SQLStepClock(time)
        self.bulk = bulk
    }

    var byteOrder: String { dialect.byteOrderCollation }

    public func now() async throws -> Timestamp {
        if let time = clock.time { return time }
        guard let now = dialect.clockExpression else {
            throw UnraceError(.storeFailure, "a step on a database without a clock of its own was given no time")
        }
        let rows = try await tx.query("SELECT \(now) AS unrace_now", [])
        return clock.set(try rows[0].int64("unrace_now"))
    }

    /// Runs a read, locking what it returns when `lock` is set. On PostgreSQL, while the step's
    /// time is not known yet, the database's clock is read in the same statement.
    func select(_ sql: String, _ arguments: [SQLValue], lock: Bool) async throws -> [SQLRow] {
        let statement = lock ? sql + dialect.rowLockClause : sql
        guard let now = dialect.clockExpression, clock.time == nil else { return try await tx.query(statement, arguments) }
        let rows = try await tx.query(Self.withDatabaseNow(statement, clock: now), arguments)
        clock.set(try rows[0].int64("unrace_now"))
        return rows.filter { !$0["unrace_row"].isNull }.map { row in
            let kept = row.columns.indices.filter { row.columns[$0] != "unrace_now" && row.columns[$0] != "unrace_row" }
            return SQLRow(columns: kept.map { row.columns[$0] }, values: kept.map { row.values[$0] })
        }
    }

    /// A write nothing in the step reads back: SQLite sends it with `COMMIT`.
    func write(_ sql: String, _ arguments: [SQLValue]) async throws {
        try await tx.executeBeforeCommit(sql, arguments)
    }

    /// A statement that also returns the database's clock, in one row even when the statement
    /// returns none (then with `unrace_row` null). Works for reads `FOR UPDATE` and for
    /// `INSERT … RETURNING` alike.
    package static func withDatabaseNow(_ statement: String, clock: String = SQLText.databaseNowSQL) -> String {
        """
        WITH unrace_q AS (\(statement))
        SELECT \(clock) AS unrace_now, r.* FROM (SELECT 1) AS unrace_t
        LEFT JOIN (SELECT 1 AS unrace_row, * FROM unrace_q) AS r ON TRUE
        """
    }

    static func placeholders(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }

    // MARK: Operations

    /// PostgreSQL's claim: the fresh claim's record (``ClaimDecision/insert`` at the step's time,
    /// the database's clock unless given) inserted unless the key has one, and the time, always.
    /// A concurrent claim of the same key waits on the inserted row until this step ends.

    public func operation(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await select(SQLText.selectOperationSQL, [.text(scope.rawValue), .text(key.rawValue)], lock: false).first.map(Self.decodeOperation)
    }

    public func lockOperation(_ claim: ClaimTemplate) async throws -> OperationLock {
        guard dialect.hasConcurrentWriters else {
            return try await operation(scope: claim.scope, key: claim.key).map(OperationLock.existing) ?? .absent
        }
        // Insert first, so a concurrent duplicate blocks on the row; read the existing record when
        // there is one. A record purged between the two statements sends the claim round again.
        for _ in 1...3 {
            // With a given time the fresh record is computed here (saturating at the ends of
            // time, like every store); on the database's clock the statement adds the lease.
            let lease = claim.lease.wholeMilliseconds
            let given = clock.time.flatMap { ClaimDecision.insert.acquiredRecord(for: claim.request(at: $0), existing: nil) }
            let row = try await tx.query(
                SQLText.reserveOperationSQL,
                [
                    clock.time.map { .integer($0.milliseconds) } ?? .null, .text(claim.scope.rawValue), .text(claim.key.rawValue),
                    .blob(claim.fingerprint.bytes), .text(claim.holder),
                    given.map { .integer($0.leaseUntil.milliseconds) } ?? .null, .integer(lease),
                    given?.expiresAt.map { .integer($0.milliseconds) } ?? .null, .integer(lease + claim.retention.wholeMilliseconds),
                ]
            )[0]
            clock.set(try row.int64("unrace_now"))
            if try row.int64("inserted") == 1 { return .reserved }
            if let record = try await lockOperation(scope: claim.scope, key: claim.key) { return .existing(record) }
        }
        throw UnraceError(.retryLimitReached, "an operation record kept disappearing between a claim's statements")
    }

    public func lockOperation(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await select(SQLText.selectOperationSQL, [.text(scope.rawValue), .text(key.rawValue)], lock: true).first.map(Self.decodeOperation)
    }

    public func saveOperation(_ record: OperationRecord, isNew: Bool) async throws {
        if isNew {
            try await write(SQLText.insertOperationSQL, Self.operationValues(record))
        } else {
            try await write(SQLText.updateOperationSQL, Array(Self.operationValues(record).dropFirst(2)) + [.text(record.scope.rawValue), .text(record.key.rawValue)])
        }
    }

    public func expiredOperations(scope: Scope?, at now: Timestamp, limit: Int) async throws -> [OperationRecord] {
        try await select(
            """
            SELECT \(SQLText.operationColumns) FROM unrace_operations
            WHERE \(scope == nil ? "" : "scope = ? AND ")expires_at IS NOT NULL AND expires_at <= ?
            ORDER BY expires_at, scope\(byteOrder), key\(byteOrder) LIMIT ?
            """,
            (scope.map { [.text($0.rawValue)] } ?? []) + [.integer(now.milliseconds), .int(limit)], lock: true
        ).map(Self.decodeOperation)
    }

    public func deleteOperations(scope: Scope, keys: [OperationKey]) async throws {
        for chunk in stride(from: 0, to: keys.count, by: 500) {
            let part = keys[chunk..<min(chunk + 500, keys.count)]
            try await tx.execute(
                "DELETE FROM unrace_operations WHERE scope = ? AND key IN (\(Self.placeholders(part.count)))",
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

    // MARK: Versioned records

    public func record(collection: String, id: String, lock: Bool) async throws -> StoredRecord? {
        try await select(
            "SELECT version, value, updated_at FROM unrace_records WHERE collection = ? AND id = ?", [.text(collection), .text(id)], lock: lock
        ).first.map { row in
            StoredRecord(
                collection: collection, id: id, value: row.optionalBytes("value") ?? [], version: try row.int64("version"),
                updatedAt: Timestamp(milliseconds: try row.int64("updated_at"))
            )
        }
    }

    public func saveRecord(_ record: StoredRecord, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_records (collection, id, version, value, updated_at) VALUES (?, ?, ?, ?, ?)",
                [.text(record.collection), .text(record.id), .integer(record.version), .blob(record.value), .integer(record.updatedAt.milliseconds)]
            )
        } else {
            try await write(
                "UPDATE unrace_records SET version = ?, value = ?, updated_at = ? WHERE collection = ? AND id = ?",
                [.integer(record.version), .blob(record.value), .integer(record.updatedAt.milliseconds), .text(record.collection), .text(record.id)]
            )
        }
    }

    // MARK: Counters and quotas

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

    // MARK: Holds

    public func resource(name: String, lock: Bool) async throws -> ResourceState? {
        try await select("SELECT capacity, held, confirmed FROM unrace_resources WHERE name = ?", [.text(name)], lock: lock).first.map { row in
            ResourceState(name: name, capacity: try row.int64("capacity"), held: try row.int64("held"), confirmed: try row.int64("confirmed"))
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
        try await select("SELECT \(SQLText.holdColumns) FROM unrace_holds WHERE key = ?", [.text(key)], lock: lock).first.map(Self.decodeHold)
    }

    public func expiredHolds(resource: String, at now: Timestamp) async throws -> [Hold] {
        try await select(
            "SELECT \(SQLText.holdColumns) FROM unrace_holds WHERE resource = ? AND state = 'held' AND expires_at <= ? ORDER BY key\(byteOrder)",
            [.text(resource), .integer(now.milliseconds)], lock: true
        ).map(Self.decodeHold)
    }

    public func resourcesWithExpiredHolds(at now: Timestamp, limit: Int) async throws -> [String] {
        try await select(
            "SELECT resource FROM unrace_holds WHERE state = 'held' AND expires_at <= ? GROUP BY resource ORDER BY resource\(byteOrder) LIMIT ?",
            [.integer(now.milliseconds), .int(limit)], lock: false
        ).map { try $0.string("resource") }
    }

    public func saveHold(_ hold: Hold, isNew: Bool) async throws {
        if isNew {
            try await write(
                "INSERT INTO unrace_holds (\(SQLText.holdColumns)) VALUES (?, ?, ?, ?, ?)",
                [.text(hold.key), .text(hold.resource), .integer(hold.units), .text(hold.state.rawValue), .integer(hold.expiresAt.milliseconds)]
            )
        } else {
            try await write("UPDATE unrace_holds SET state = ? WHERE key = ?", [.text(hold.state.rawValue), .text(hold.key)])
        }
    }

    static func decodeHold(_ row: SQLRow) throws -> Hold {
        guard let state = Hold.State(rawValue: try row.string("state")) else {
            throw UnraceError(.storeFailure, "a stored hold has an unknown state")
        }
        return Hold(
            key: try row.string("key"), resource: try row.string("resource"), units: try row.int64("units"), state: state,
            expiresAt: Timestamp(milliseconds: try row.int64("expires_at"))
        )
    }

    // MARK: Ledger

    /// A failure row shaped like a transfer row, for the `UNION ALL` of the two tables.

    public func accounts(_ ids: [String], lock: Bool) async throws -> [String: Account] {
        guard !ids.isEmpty else { return [:] }
        let sorted = Set(ids).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var found: [String: Account] = [:]
        // Locks are taken in id order, in one statement per chunk, so concurrent steps never deadlock.
        for chunk in stride(from: 0, to: sorted.count, by: 500) {
            let part = Array(sorted[chunk..<min(chunk + 500, sorted.count)])
            let rows = try await select(
                "SELECT \(SQLText.accountColumns) FROM unrace_accounts WHERE id IN (\(Self.placeholders(part.count))) ORDER BY id\(byteOrder)",
                part.map(SQLValue.text), lock: lock
            )
            for row in rows {
                var account = Account(
                    id: try row.string("id"), ledger: try row.int64("ledger"), code: try row.int64("code"),
                    flags: Account.Flags(rawValue: try row.int64("flags"))
                )
                account.debitsPending = try row.int64("debits_pending")
                account.debitsPosted = try row.int64("debits_posted")
                account.creditsPending = try row.int64("credits_pending")
                account.creditsPosted = try row.int64("credits_posted")
                found[account.id] = account
            }
        }
        return found
    }

    public func insertAccounts(_ accounts: [Account], now: Timestamp) async throws {
        for chunk in stride(from: 0, to: accounts.count, by: 500) {
            let part = accounts[chunk..<min(chunk + 500, accounts.count)]
            try await write(
                "INSERT INTO unrace_accounts (\(SQLText.accountColumns), created_at) VALUES "
                    + part.map { _ in "(?, ?, ?, ?, 0, 0, 0, 0, ?)" }.joined(separator: ", "),
                part.flatMap { [.text($0.id), .integer($0.ledger), .integer($0.code), .integer($0.flags.rawValue), .integer(now.milliseconds)] }
            )
        }
    }

    public func saveBalances(_ accounts: [Account]) async throws {
        // Every account in one statement per chunk: an upsert whose rows always exist (they are
        // locked), so it only ever updates; the CHECK constraints re-check the balance rules.
        for chunk in stride(from: 0, to: accounts.count, by: 500) {
            let part = accounts[chunk..<min(chunk + 500, accounts.count)]
            try await write(
                "INSERT INTO unrace_accounts (\(SQLText.accountColumns), created_at) VALUES "
                    + part.map { _ in "(\(Self.placeholders(9)))" }.joined(separator: ", ")
                    + """
                     ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, debits_posted = excluded.debits_posted,
                    credits_pending = excluded.credits_pending, credits_posted = excluded.credits_posted
                    """,
                part.flatMap { account -> [SQLValue] in
                    [.text(account.id), .integer(account.ledger), .integer(account.code), .integer(account.flags.rawValue),
                     .integer(account.debitsPending), .integer(account.debitsPosted), .integer(account.creditsPending),
                     .integer(account.creditsPosted), .integer(0)]
                }
            )
        }
    }

    public func transfers(_ ids: [String]) async throws -> (stored: [String: StoredTransfer], failed: Set<String>) {
        guard !ids.isEmpty else { return ([:], []) }
        if let bulk { return try Self.decodeTransfersAndFailures(try await bulk.fetchTransfers(ids)) }
        var rows: [SQLRow] = []
        for chunk in stride(from: 0, to: ids.count, by: 400) {
            let part = Array(ids[chunk..<min(chunk + 400, ids.count)])
            let list = Self.placeholders(part.count)
            rows += try await tx.query(
                """
                SELECT \(SQLText.transferColumns) FROM unrace_transfers WHERE id IN (\(list))
                UNION ALL
                SELECT \(SQLText.failureColumns) FROM unrace_transfer_failures WHERE id IN (\(list))
                """,
                (part + part).map(SQLValue.text)
            )
        }
        return try Self.decodeTransfersAndFailures(rows)
    }

    public func expiredPendingTransfers(at now: Timestamp, touching accounts: [String]?, limit: Int) async throws -> [StoredTransfer] {
        var sql = "SELECT \(SQLText.transferColumns) FROM unrace_transfers WHERE state = 'pending' AND expires_at <= ?"
        var arguments: [SQLValue] = [.integer(now.milliseconds)]
        if let accounts {
            guard !accounts.isEmpty else { return [] }
            let list = Self.placeholders(accounts.count)
            sql += " AND (debit_account IN (\(list)) OR credit_account IN (\(list)))"
            arguments += (accounts + accounts).map(SQLValue.text)
        }
        sql += " ORDER BY expires_at, id\(byteOrder) LIMIT ?"
        arguments.append(.int(limit))
        return try Self.decodeTransfersAndFailures(try await select(sql, arguments, lock: false)).stored.values
            .sorted { ($0.expiresAt!, $0.transfer.id) < ($1.expiresAt!, $1.transfer.id) }
    }

    public func insertTransfers(_ transfers: [StoredTransfer]) async throws {
        if let bulk { return try await bulk.insertTransfers(transfers) }
        for chunk in stride(from: 0, to: transfers.count, by: 200) {
            let part = transfers[chunk..<min(chunk + 200, transfers.count)]
            try await write(
                "INSERT INTO unrace_transfers (\(SQLText.transferColumns)) VALUES " + part.map { _ in "(\(Self.placeholders(12)))" }.joined(separator: ", "),
                part.flatMap(Self.transferValues)
            )
        }
    }

    public func saveTransferStates(_ transfers: [StoredTransfer]) async throws {
        for transfer in transfers {
            try await write("UPDATE unrace_transfers SET state = ? WHERE id = ?", [.text(transfer.state.rawValue), .text(transfer.transfer.id)])
        }
    }

    public func insertTransferFailures(_ failures: [(id: String, code: String)], now: Timestamp) async throws {
        // A failed id is a row of the transfers table in the state `failed` (the result code in
        // `pending_id`), under the same primary key as a created transfer: two steps that race on
        // one id, one creating it and one failing it, cannot both commit — the loser retries and
        // then answers about the winner. (`unrace_transfer_failures` holds failures written by
        // earlier versions and is still read.)
        for chunk in stride(from: 0, to: failures.count, by: 500) {
            let part = failures[chunk..<min(chunk + 500, failures.count)]
            try await write(
                "INSERT INTO unrace_transfers (\(SQLText.transferColumns)) VALUES "
                    + part.map { _ in "(?, '', '', 0, 0, 0, 0, ?, 0, 'failed', ?, NULL)" }.joined(separator: ", "),
                part.flatMap { [SQLValue.text($0.id), .text($0.code), .integer(now.milliseconds)] }
            )
        }
    }

    public func ledgerTotals() async throws -> LedgerTotals {
        // Each balance is split into its high and low 32 bits, whose sums cannot overflow 64 bits
        // for fewer than 2^31 accounts; they are joined again in 128-bit arithmetic.
        var columns: [String] = []
        for (column, name) in [("debits_posted", "dp"), ("credits_posted", "cp"), ("debits_pending", "dn"), ("credits_pending", "cn")] {
            // As text: PostgreSQL's SUM over BIGINT is an exact `numeric`, SQLite's an integer.
            columns.append("CAST(COALESCE(SUM(\(column) >> 32), 0) AS TEXT) AS \(name)_high")
            columns.append("CAST(COALESCE(SUM(\(column) & 4294967295), 0) AS TEXT) AS \(name)_low")
        }
        let row = try await tx.query("SELECT \(columns.joined(separator: ", ")) FROM unrace_accounts", [])[0]
        func total(_ name: String) throws -> Int128 {
            try row.int128("\(name)_high") << 32 + row.int128("\(name)_low")
        }
        return LedgerTotals(debitsPosted: try total("dp"), creditsPosted: try total("cp"), debitsPending: try total("dn"), creditsPending: try total("cn"))
    }

    package static func transferValues(_ stored: StoredTransfer) -> [SQLValue] {
        let transfer = stored.transfer
        return [
            .text(transfer.id), .text(transfer.debitAccount), .text(transfer.creditAccount), .integer(transfer.amount),
            .integer(transfer.ledger), .integer(transfer.code), .integer(transfer.flags.rawValue),
            transfer.pendingID.map(SQLValue.text) ?? .null, .integer(transfer.timeoutMilliseconds),
            .text(stored.state.rawValue), .integer(stored.createdAt.milliseconds),
            stored.expiresAt.map { .integer($0.milliseconds) } ?? .null,
        ]
    }

    package static func decodeTransfersAndFailures(_ rows: [SQLRow]) throws -> (stored: [String: StoredTransfer], failed: Set<String>) {
        var transfers: [String: StoredTransfer] = [:]
        var failed: Set<String> = []
        for row in rows {
            let id = try row.string("id")
            let state = try row.string("state")
            guard state != "failed" else {
                failed.insert(id)
                continue
            }
            guard let stored = StoredTransfer.State(rawValue: state) else {
                throw UnraceError(.storeFailure, "a stored transfer has an unknown state")
            }
            let transfer = Transfer(
                id: id, debit: try row.string("debit_account"), credit: try row.string("credit_account"),
                amount: try row.int64("amount"), ledger: try row.int64("ledger"), code: try row.int64("code"),
                flags: Transfer.Flags(rawValue: try row.int64("flags")), pendingID: row["pending_id"].string,
                timeoutMilliseconds: try row.int64("timeout_ms")
            )
            transfers[id] = StoredTransfer(
                transfer: transfer, state: stored, createdAt: Timestamp(milliseconds: try row.int64("created_at")),
                expiresAt: row.optionalInt64("expires_at").map(Timestamp.init(milliseconds:))
            )
        }
        return (transfers, failed)
    }

    // MARK: Inbox

    public func lockStream(_ stream: String, eventID: String) async throws -> (head: StreamHead, stored: InboxPosition?) {
        let row: SQLRow?
        if dialect.hasConcurrentWriters {
            // Create-or-lock the stream row in one upsert, reading the event id with it.
            row = try await select(SQLText.lockStreamSQL, [.text(stream), .text(eventID), .text(eventID)], lock: false).first
        } else {
            row = try await tx.query(SQLText.readStreamSQL, [.text(stream), .text(eventID)]).first
        }
        let head = StreamHead(
            stream: stream, head: row?.optionalInt64("head") ?? 0, parked: Int(row?.optionalInt64("parked") ?? 0),
            gapSince: row?.optionalInt64("gap_since").map(Timestamp.init(milliseconds:))
        )
        guard let row, let storedStream = row["event_stream"].string, let sequence = row.optionalInt64("event_sequence") else {
            return (head, nil)
        }
        return (head, InboxPosition(stream: storedStream, sequence: sequence))
    }

    public func isPositionTaken(stream: String, sequence: Int64) async throws -> Bool {
        !(try await tx.query("SELECT 1 AS taken FROM unrace_inbox_events WHERE stream = ? AND sequence = ?", [.text(stream), .integer(sequence)]))
            .isEmpty
    }

    public func insertInboxEvent(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try await write(
            """
            INSERT INTO unrace_inbox_events (event_id, stream, sequence, type, payload, status, reason, received_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """,
            InboxSQL.eventValues(event, status, reason, now)
        )
    }

    public func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws {
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
            stored: row.string("event_id"), stream: stream, sequence: sequence, type: row.string("type"), payload: row.optionalBytes("payload") ?? []
        )
    }

    public func lowestParkedSequence(stream: String) async throws -> Int64? {
        try await tx.query(
            "SELECT MIN(sequence) AS lowest FROM unrace_inbox_events WHERE stream = ? AND status = 'parked'", [.text(stream)]
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
                stream: try row.string("stream"), head: try row.int64("head"), parked: Int(try row.int64("parked")),
                since: Timestamp(milliseconds: try row.int64("gap_since"))
            )
        }
    }

    // MARK: Queues

    static var queueColumns: String {
        "position, queue, id, ordering_key, sequence, payload, state, attempts, max_attempts, visible_at, leased_by, last_error, enqueued_at, completed_at"
    }

    public func queueMessages(queue: String, ids: [String], lock: Bool) async throws -> [String: QueueMessage] {
        var found: [String: QueueMessage] = [:]
        for chunk in stride(from: 0, to: ids.count, by: 500) {
            let part = ids[chunk..<min(chunk + 500, ids.count)]
            let rows = try await select(
                "SELECT \(Self.queueColumns) FROM unrace_queue_messages WHERE queue = ? AND id IN (\(Self.placeholders(part.count))) ORDER BY position",
                [.text(queue)] + part.map { .text($0) }, lock: lock
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
                .text(message.state.rawValue), .integer(message.attempts), .integer(message.maxAttempts), .integer(message.visibleAt.milliseconds),
                message.leasedBy.map(SQLValue.text) ?? .null, message.lastError.map(SQLValue.text) ?? .null,
                message.completedAt.map { .integer($0.milliseconds) } ?? .null, .text(message.queue), .text(message.id),
            ]
        )
    }

    public func queueMessages(queue: String, state: QueueMessageState, completedBefore: Timestamp?, limit: Int) async throws -> [QueueMessage] {
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

    public func deleteCompletedQueueMessages(queue: String, positions: [Int64]) async throws {
        for chunk in stride(from: 0, to: positions.count, by: 500) {
            let part = positions[chunk..<min(chunk + 500, positions.count)]
            try await tx.execute(
                "DELETE FROM unrace_queue_messages WHERE queue = ? AND state = 'done' AND position IN (\(Self.placeholders(part.count)))",
                [.text(queue)] + part.map { .integer($0) }
            )
        }
    }

    public func queueDepth(queue: String) async throws -> QueueDepth {
        var depth = QueueDepth()
        for row in try await tx.query("SELECT state, COUNT(*) AS n FROM unrace_queue_messages WHERE queue = ? GROUP BY state", [.text(queue)]) {
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
            queue: try row.string("queue"), id: try row.string("id"), orderingKey: row["ordering_key"].string,
            sequence: row.optionalInt64("sequence"), payload: row.optionalBytes("payload") ?? [], state: state,
            attempts: try row.int64("attempts"), maxAttempts: try row.int64("max_attempts"),
            visibleAt: Timestamp(milliseconds: try row.int64("visible_at")), leasedBy: row["leased_by"].string,
            lastError: row["last_error"].string, enqueuedAt: Timestamp(milliseconds: try row.int64("enqueued_at")),
            completedAt: row.optionalInt64("completed_at").map(Timestamp.init(milliseconds:)), position: try row.int64("position")
        )
    }

    // MARK: Lifecycles

    public func lifecycleState(lifecycle: String, entity: String, lock: Bool) async throws -> String? {
        let rows: [SQLRow]
        if lock && dialect.hasConcurrentWriters {
            // An absent entity gets a row with the empty state (never a valid state name), which
            // a concurrent first event then waits on.
            rows = try await select(
                """
                INSERT INTO unrace_lifecycle_states (lifecycle, entity, state, updated_at) VALUES (?, ?, '', 0)
                ON CONFLICT (lifecycle, entity) DO UPDATE SET entity = excluded.entity RETURNING state
                """,
                [.text(lifecycle), .text(entity)], lock: false
            )
        } else {
            rows = try await select(
                "SELECT state FROM unrace_lifecycle_states WHERE lifecycle = ? AND entity = ?", [.text(lifecycle), .text(entity)], lock: false
            )
        }
        guard let state = try rows.first?.string("state"), !state.isEmpty else { return nil }
        return state
    }

    public func saveLifecycleState(lifecycle: String, entity: String, state: String, isNew: Bool, now: Timestamp) async throws {
        try await write(
            """
            INSERT INTO unrace_lifecycle_states (lifecycle, entity, state, updated_at) VALUES (?, ?, ?, ?)
            ON CONFLICT (lifecycle, entity) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
            """,
            [.text(lifecycle), .text(entity), .text(state), .integer(now.milliseconds)]
        )
    }
}

/// The time of one SQL step: known from the start, or read from the database once.
final class SQLStepClock: Sendable {
    private let value: Mutex<Timestamp?>

    init(_ time: Timestamp?) { value = Mutex(time) }

    var time: Timestamp? { value.withLock { $0 } }

    /// Keeps the first time read; returns the step's time.
    @discardableResult
    func set(_ milliseconds: Int64) -> Timestamp {
        value.withLock { current in
            if let current { return current }
            current = Timestamp(milliseconds: milliseconds)
            return current!
        }
    }
}

/// How a backend reads and inserts transfers in bulk when it can do better than the portable
/// statements (PostgreSQL binds arrays).
package struct SQLBulkStatements: Sendable {
    package var fetchTransfers: @Sendable ([String]) async throws -> [SQLRow]
    package var insertTransfers: @Sendable ([StoredTransfer]) async throws -> Void

    package init(
        fetchTransfers: @escaping @Sendable ([String]) async throws -> [SQLRow], insertTransfers: @escaping @Sendable ([StoredTransfer]) async throws -> Void
    ) {
        self.fetchTransfers = fetchTransfers
        self.insertTransfers = insertTransfers
    }
}

/// The inbox statements, shared with backends that run some as prepared statements.
package enum InboxSQL {
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
          ON CONFLICT (scope, key) DO NOTHING RETURNING 1)
        SELECT now AS unrace_now, (SELECT COUNT(*) FROM inserted) AS inserted FROM unrace_t
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
