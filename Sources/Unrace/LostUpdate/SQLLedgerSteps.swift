package import UnraceCore

/// The ledger on any SQL store. The balance rules are enforced twice inside the write: by
/// ``LedgerEngine`` over rows locked for the transaction, and by `CHECK` constraints on the
/// accounts table, so no code path can commit an overdraft.
package struct SQLLedgerSteps: Sendable {
    package let lockClause: String

    package init(lockClause: String) { self.lockClause = lockClause }

    package static func statements(keyedTable: String = "") -> [String] {
        [
            """
            CREATE TABLE unrace_accounts (
              id TEXT PRIMARY KEY, ledger BIGINT NOT NULL, code BIGINT NOT NULL, flags BIGINT NOT NULL,
              debits_pending BIGINT NOT NULL, debits_posted BIGINT NOT NULL,
              credits_pending BIGINT NOT NULL, credits_posted BIGINT NOT NULL, created_at BIGINT NOT NULL,
              CHECK (debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 AND credits_posted >= 0),
              CHECK ((flags & 1) = 0 OR debits_pending + debits_posted <= credits_posted),
              CHECK ((flags & 2) = 0 OR credits_pending + credits_posted <= debits_posted)
            )\(keyedTable)
            """,
            """
            CREATE TABLE unrace_transfers (
              id TEXT PRIMARY KEY, debit_account TEXT NOT NULL, credit_account TEXT NOT NULL,
              amount BIGINT NOT NULL, ledger BIGINT NOT NULL, code BIGINT NOT NULL, flags BIGINT NOT NULL,
              pending_id TEXT, timeout_ms BIGINT NOT NULL, state TEXT NOT NULL, created_at BIGINT NOT NULL, expires_at BIGINT
            )\(keyedTable)
            """,
            "CREATE TABLE unrace_transfer_failures (id TEXT PRIMARY KEY, result TEXT NOT NULL, created_at BIGINT NOT NULL)\(keyedTable)",
        ]
    }

    static let accountColumns = "id, ledger, code, flags, debits_pending, debits_posted, credits_pending, credits_posted"
    package static let transferColumns = "id, debit_account, credit_account, amount, ledger, code, flags, pending_id, timeout_ms, state, created_at, expires_at"

    static func placeholders(_ count: Int) -> String { Array(repeating: "?", count: count).joined(separator: ", ") }

    package func createAccounts<T: SQLTransaction>(_ tx: T, _ accounts: [Account], now: Timestamp) async throws -> [AccountResult] {
        let existing = try await fetchAccounts(tx, accounts.map(\.id), lock: true)
        var seen = existing
        var results: [AccountResult] = []
        for account in accounts {
            if let old = seen[account.id] {
                results.append(AccountResult.compare(account, old))
                continue
            }
            try await tx.execute(
                "INSERT INTO unrace_accounts (\(Self.accountColumns), created_at) VALUES (?, ?, ?, ?, 0, 0, 0, 0, ?)",
                [.text(account.id), .integer(account.ledger), .integer(account.code), .integer(account.flags.rawValue), .integer(now.milliseconds)]
            )
            seen[account.id] = account
            results.append(.created)
        }
        return results
    }

    /// How a backend reads the stored and failed transfers among some ids, and inserts new
    /// transfers, when it can do better than the portable statements (PostgreSQL binds arrays).
    package struct BulkStatements: Sendable {
        package var fetch: @Sendable ([String]) async throws -> [SQLRow]
        package var insert: @Sendable ([StoredTransfer]) async throws -> Void

        package init(fetch: @escaping @Sendable ([String]) async throws -> [SQLRow], insert: @escaping @Sendable ([StoredTransfer]) async throws -> Void) {
            self.fetch = fetch
            self.insert = insert
        }
    }

    package func submit<T: SQLTransaction>(_ tx: T, _ batch: [Transfer], now: Timestamp, bulk: BulkStatements? = nil) async throws -> [TransferResult] {
        let ids = LedgerEngine.snapshotIDs(of: batch)
        // Locking the accounts in id order first keeps concurrent batches from deadlocking.
        let accounts = try await fetchAccounts(tx, ids.accounts, lock: true)
        var rows: [SQLRow] = []
        if !ids.transfers.isEmpty {
            if let bulk { rows = try await bulk.fetch(ids.transfers) } else { rows = try await fetchTransferRows(tx, ids.transfers) }
        }
        let (transfers, failed) = try Self.decodeTransfersAndFailures(rows)
        var engine = LedgerEngine(accounts: accounts, transfers: transfers, failed: failed)
        let (results, changes) = engine.apply(batch, now: now)

        // Every changed account in one statement: an upsert whose rows always exist (they are
        // locked above), so it only ever updates; the CHECK constraints re-check the rules.
        let changed = changes.accounts.values.sorted { $0.id < $1.id }
        for chunk in stride(from: 0, to: changed.count, by: 500) {
            let rows = changed[chunk..<min(chunk + 500, changed.count)]
            try await tx.executeBeforeCommit(
                "INSERT INTO unrace_accounts (\(Self.accountColumns), created_at) VALUES "
                    + rows.map { _ in "(\(Self.placeholders(9)))" }.joined(separator: ", ")
                    + """
                     ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, debits_posted = excluded.debits_posted,
                    credits_pending = excluded.credits_pending, credits_posted = excluded.credits_posted
                    """,
                rows.flatMap { account -> [SQLValue] in
                    [.text(account.id), .integer(account.ledger), .integer(account.code), .integer(account.flags.rawValue),
                     .integer(account.debitsPending), .integer(account.debitsPosted), .integer(account.creditsPending),
                     .integer(account.creditsPosted), .integer(now.milliseconds)]
                }
            )
        }
        if let bulk, !changes.created.isEmpty {
            try await bulk.insert(changes.created)
        } else {
            try await insertPortably(tx, changes.created)
        }
        for transfer in changes.updated.values.sorted(by: { $0.transfer.id < $1.transfer.id }) {
            try await tx.executeBeforeCommit(
                "UPDATE unrace_transfers SET state = ? WHERE id = ?", [.text(transfer.state.rawValue), .text(transfer.transfer.id)]
            )
        }
        if !changes.failures.isEmpty {
            let failures = changes.failures.sorted { $0.key < $1.key }
            try await tx.executeBeforeCommit(
                "INSERT INTO unrace_transfer_failures (id, result, created_at) VALUES "
                    + failures.map { _ in "(?, ?, ?)" }.joined(separator: ", ") + " ON CONFLICT (id) DO NOTHING",
                failures.flatMap { [SQLValue.text($0.key), .text($0.value), .integer(now.milliseconds)] }
            )
        }
        return results
    }

    package func fetchAccounts<T: SQLTransaction>(_ tx: T, _ ids: [String], lock: Bool) async throws -> [String: Account] {
        guard !ids.isEmpty else { return [:] }
        let rows = try await tx.query(
            "SELECT \(Self.accountColumns) FROM unrace_accounts WHERE id IN (\(Self.placeholders(ids.count))) ORDER BY id"
                + (lock ? " \(lockClause)" : ""),
            ids.sorted().map(SQLValue.text)
        )
        var accounts: [String: Account] = [:]
        for row in rows {
            var account = Account(
                id: try row.string("id"), ledger: try row.int64("ledger"), code: try row.int64("code"),
                flags: Account.Flags(rawValue: try row.int64("flags"))
            )
            account.debitsPending = try row.int64("debits_pending")
            account.debitsPosted = try row.int64("debits_posted")
            account.creditsPending = try row.int64("credits_pending")
            account.creditsPosted = try row.int64("credits_posted")
            accounts[account.id] = account
        }
        return accounts
    }

    func insertPortably<T: SQLTransaction>(_ tx: T, _ created: [StoredTransfer]) async throws {
        for chunk in stride(from: 0, to: created.count, by: 200) {
            let rows = created[chunk..<min(chunk + 200, created.count)]
            try await tx.executeBeforeCommit(
                "INSERT INTO unrace_transfers (\(Self.transferColumns)) VALUES "
                    + rows.map { _ in "(\(Self.placeholders(12)))" }.joined(separator: ", "),
                rows.flatMap(Self.values)
            )
        }
    }

    /// The stored transfers among `ids`, and the ids whose first attempt failed, as rows of one
    /// query (failures have the state `failed`).
    func fetchTransferRows<T: SQLTransaction>(_ tx: T, _ ids: [String]) async throws -> [SQLRow] {
        let list = Self.placeholders(ids.count)
        return try await tx.query(
            """
            SELECT \(Self.transferColumns) FROM unrace_transfers WHERE id IN (\(list))
            UNION ALL
            SELECT \(Self.failureColumns) FROM unrace_transfer_failures WHERE id IN (\(list))
            """,
            (ids + ids).map(SQLValue.text)
        )
    }

    /// A failure row shaped like a transfer row, for the `UNION ALL` of the two tables.
    package static let failureColumns = "id, NULL, NULL, 0, 0, 0, 0, NULL, 0, 'failed', 0, NULL"

    package static func decodeTransfersAndFailures(_ rows: [SQLRow]) throws -> ([String: StoredTransfer], Set<String>) {
        var transfers: [String: StoredTransfer] = [:]
        var failed: Set<String> = []
        for row in rows {
            let id = try row.string("id")
            let state = try row.string("state")
            guard state != "failed" else {
                failed.insert(id)
                continue
            }
            let transfer = Transfer(
                id: id, debit: try row.string("debit_account"), credit: try row.string("credit_account"),
                amount: try row.int64("amount"), ledger: try row.int64("ledger"), code: try row.int64("code"),
                flags: Transfer.Flags(rawValue: try row.int64("flags")), pendingID: row["pending_id"].string,
                timeoutMilliseconds: try row.int64("timeout_ms")
            )
            transfers[id] = StoredTransfer(
                transfer: transfer, state: StoredTransfer.State(rawValue: state) ?? .posted,
                createdAt: Timestamp(milliseconds: try row.int64("created_at")),
                expiresAt: row.optionalInt64("expires_at").map(Timestamp.init(milliseconds:))
            )
        }
        return (transfers, failed)
    }

    package func totals<T: SQLTransaction>(_ tx: T) async throws -> LedgerTotals {
        let row = try await tx.query(
            """
            SELECT CAST(COALESCE(SUM(debits_posted), 0) AS BIGINT) AS dp, CAST(COALESCE(SUM(credits_posted), 0) AS BIGINT) AS cp,
                   CAST(COALESCE(SUM(debits_pending), 0) AS BIGINT) AS dn, CAST(COALESCE(SUM(credits_pending), 0) AS BIGINT) AS cn
            FROM unrace_accounts
            """
        )[0]
        return LedgerTotals(
            debitsPosted: try row.int64("dp"), creditsPosted: try row.int64("cp"),
            debitsPending: try row.int64("dn"), creditsPending: try row.int64("cn")
        )
    }

    static func values(_ stored: StoredTransfer) -> [SQLValue] {
        let transfer = stored.transfer
        return [
            .text(transfer.id), .text(transfer.debitAccount), .text(transfer.creditAccount), .integer(transfer.amount),
            .integer(transfer.ledger), .integer(transfer.code), .integer(transfer.flags.rawValue),
            transfer.pendingID.map(SQLValue.text) ?? .null, .integer(transfer.timeoutMilliseconds),
            .text(stored.state.rawValue), .integer(stored.createdAt.milliseconds),
            stored.expiresAt.map { .integer($0.milliseconds) } ?? .null,
        ]
    }
}
