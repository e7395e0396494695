public import Unrace
public import UnraceSQL

/// Random transfers among wallets, one of them hot: the lost-update race's ledger workload,
/// shared by the tests, the worker processes and the benchmark.
public enum LedgerWorkload {
    /// `count` transfers among `accounts`; about half touch `accounts[0]`, the hot one.
    public static func transfers(count: Int, accounts: [String], seed: UInt64, prefix: String) -> [Transfer] {
        var generator = SeededGenerator(seed: seed)
        return (0..<count).map { index in
            let hot = generator.chance(1, in: 2)
            var debit = accounts[generator.int(in: 0...(accounts.count - 1))]
            var credit = hot ? accounts[0] : accounts[generator.int(in: 0...(accounts.count - 1))]
            if debit == credit { debit = accounts[(accounts.firstIndex(of: debit)! + 1) % accounts.count] }
            if generator.chance(1, in: 2) { swap(&debit, &credit) }
            return Transfer(id: "\(prefix)-t\(index)", debit: debit, credit: credit, amount: Int64(generator.int(in: 1...300)))
        }
    }

    /// What went wrong, if anything: every id's results must agree (one `created` and the rest
    /// `exists`, or one failure and the rest `idAlreadyFailed`), no wallet may be overdrawn, and
    /// money must be conserved.
    public static func violations<S: Store>(
        results: [String: [TransferResult]],
        transfers: [Transfer],
        ledger: Ledger<S>,
        accounts: [String]
    ) async throws -> [String] {
        var violations: [String] = []
        for transfer in transfers {
            let outcome = results[transfer.id] ?? []
            let created = outcome.filter { $0 == .created }.count
            let consistent =
                created == 1
                ? outcome.allSatisfy { $0 == .created || $0 == .exists }
                : created == 0 && outcome.filter { $0 != .idAlreadyFailed }.count == 1
            if !consistent { violations.append("\(transfer.id) answered \(outcome.map(\.code))") }
        }
        return violations + (try await balanceViolations(ledger: ledger, accounts: accounts))
    }

    /// Overdrawn wallets and unbalanced totals.
    public static func balanceViolations<S: Store>(ledger: Ledger<S>, accounts: [String]) async throws -> [String] {
        var violations: [String] = []
        let totals = try await ledger.totals()
        if !totals.isBalanced { violations.append("money was created or destroyed: \(totals)") }
        for account in try await ledger.lookupAccounts(accounts) where account.flags.contains(.debitsMustNotExceedCredits) {
            if account.debitsPosted + account.debitsPending > account.creditsPosted { violations.append("\(account.id) is overdrawn") }
        }
        return violations
    }

    /// Accounts whose balance differs from the sum of the stored transfers whose ids start with
    /// `prefix`: the append-only log and the balances must tell the same story.
    public static func logViolations<S: SQLStore>(store: S, ledger: Ledger<S>, accounts: [String], prefix: String) async throws -> [String]
    {
        let rows = try await store.withTransaction { tx in
            try await tx.query(
                "SELECT debit_account, credit_account, amount FROM unrace_transfers WHERE id LIKE ? AND state = 'posted'",
                [.text(prefix + "-%")]
            )
        }
        var net: [String: Int64] = [:]
        for row in rows {
            let amount = try row.int64("amount")
            net[try row.string("debit_account"), default: 0] -= amount
            net[try row.string("credit_account"), default: 0] += amount
        }
        return try await ledger.lookupAccounts(accounts).compactMap { account in
            account.balance == net[account.id, default: 0]
                ? nil : "\(account.id): balance \(account.balance), log says \(net[account.id, default: 0])"
        }
    }
}
