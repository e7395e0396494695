public import Unrace
public import UnraceCore

/// `LedgerRows` in SQL.
extension SQLRows: LedgerRows {
    /// A failure row shaped like a transfer row, for the `UNION ALL` of the two tables.

    public func accounts(_ ids: [String], lock: Bool) async throws -> [String: Account] {
        guard !ids.isEmpty else { return [:] }
        let sorted = Set(ids).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var found: [String: Account] = [:]
        // Locks are taken in id order, in one statement per chunk, so concurrent steps never deadlock.
        for chunk in stride(from: 0, to: sorted.count, by: 500) {
            let part = Array(sorted[chunk..<min(chunk + 500, sorted.count)])
            let rows = try await select(
                "SELECT \(SQLText.accountColumns) FROM unrace_accounts WHERE id IN (\(SQLText.placeholders(part.count))) ORDER BY id\(byteOrder)",
                part.map(SQLValue.text),
                lock: lock
            )
            for row in rows {
                var account = Account(
                    id: try row.string("id"),
                    ledger: try row.int64("ledger"),
                    code: try row.int64("code"),
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
                part.flatMap {
                    [.text($0.id), .integer($0.ledger), .integer($0.code), .integer($0.flags.rawValue), .integer(now.milliseconds)]
                }
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
                    + part.map { _ in "(\(SQLText.placeholders(9)))" }.joined(separator: ", ")
                        + """
                         ON CONFLICT (id) DO UPDATE SET debits_pending = excluded.debits_pending, debits_posted = excluded.debits_posted,
                        credits_pending = excluded.credits_pending, credits_posted = excluded.credits_posted
                        """,
                part.flatMap { account -> [SQLValue] in
                    [
                        .text(account.id), .integer(account.ledger), .integer(account.code), .integer(account.flags.rawValue),
                        .integer(account.debitsPending), .integer(account.debitsPosted), .integer(account.creditsPending),
                        .integer(account.creditsPosted), .integer(0),
                    ]
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
            let list = SQLText.placeholders(part.count)
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
            let list = SQLText.placeholders(accounts.count)
            sql += " AND (debit_account IN (\(list)) OR credit_account IN (\(list)))"
            arguments += (accounts + accounts).map(SQLValue.text)
        }
        sql += " ORDER BY expires_at, id\(byteOrder) LIMIT ?"
        arguments.append(.int(limit))
        return try Self.decodeTransfersAndFailures(try await select(sql, arguments, lock: false)).stored.values
            .sorted { ($0.expiresAt!, $0.transfer.id) < ($1.expiresAt!, $1.transfer.id) }
    }

    public func insertTransfers(_ transfers: [StoredTransfer]) async throws {
        if let bulk { return try await bulk.saveBalancesAndInsertTransfers([], transfers) }
        for chunk in stride(from: 0, to: transfers.count, by: 200) {
            let part = transfers[chunk..<min(chunk + 200, transfers.count)]
            try await write(
                "INSERT INTO unrace_transfers (\(SQLText.transferColumns)) VALUES "
                    + part.map { _ in "(\(SQLText.placeholders(12)))" }.joined(separator: ", "),
                part.flatMap(Self.transferValues)
            )
        }
    }

    public func saveBalances(_ accounts: [Account], insertingTransfers transfers: [StoredTransfer]) async throws {
        guard let bulk else { return try await saveBalancesThenInsertTransfers(accounts, transfers) }
        if !accounts.isEmpty || !transfers.isEmpty { try await bulk.saveBalancesAndInsertTransfers(accounts, transfers) }
    }

    public func saveTransferStates(_ transfers: [StoredTransfer]) async throws {
        for transfer in transfers {
            try await write(
                "UPDATE unrace_transfers SET state = ? WHERE id = ?",
                [.text(transfer.state.rawValue), .text(transfer.transfer.id)]
            )
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
        return LedgerTotals(
            debitsPosted: try total("dp"),
            creditsPosted: try total("cp"),
            debitsPending: try total("dn"),
            creditsPending: try total("cn")
        )
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
                id: id,
                debit: try row.string("debit_account"),
                credit: try row.string("credit_account"),
                amount: try row.int64("amount"),
                ledger: try row.int64("ledger"),
                code: try row.int64("code"),
                flags: Transfer.Flags(rawValue: try row.int64("flags")),
                pendingID: row["pending_id"].string,
                timeoutMilliseconds: try row.int64("timeout_ms")
            )
            transfers[id] = StoredTransfer(
                transfer: transfer,
                state: stored,
                createdAt: Timestamp(milliseconds: try row.int64("created_at")),
                expiresAt: row.optionalInt64("expires_at").map(Timestamp.init(milliseconds:))
            )
        }
        return (transfers, failed)
    }
}
