public import UnraceCore

/// The rows of ``Ledger``: accounts, transfers and the ids whose first attempt failed.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol LedgerRows: StepTime {
    /// The accounts among `ids` that exist, locked (in id order) when `lock` is set.
    func accounts(_ ids: [String], lock: Bool) async throws -> [String: Account]
    /// Inserts new accounts with zero balances.
    func insertAccounts(_ accounts: [Account], now: Timestamp) async throws
    /// Writes the balances of existing accounts.
    func saveBalances(_ accounts: [Account]) async throws
    /// The stored transfers among `ids`, and the ids whose first attempt failed.
    func transfers(_ ids: [String]) async throws -> (stored: [String: StoredTransfer], failed: Set<String>)
    /// Pending transfers whose timeout is at or before `now`, earliest first, at most `limit`;
    /// only those touching `accounts`, when given.
    func expiredPendingTransfers(at now: Timestamp, touching accounts: [String]?, limit: Int) async throws -> [StoredTransfer]
    /// Inserts new transfers.
    func insertTransfers(_ transfers: [StoredTransfer]) async throws
    /// Writes the balances of existing (locked) accounts and inserts new transfers: on
    /// `PostgresStore` in one statement (one round trip while the group holds its account locks).
    /// The default calls ``saveBalances(_:)`` then ``insertTransfers(_:)``.
    func saveBalances(_ accounts: [Account], insertingTransfers transfers: [StoredTransfer]) async throws
    /// Writes the state of existing transfers.
    func saveTransferStates(_ transfers: [StoredTransfer]) async throws
    /// Remembers ids whose first attempt failed, with the result code.
    func insertTransferFailures(_ failures: [(id: String, code: String)], now: Timestamp) async throws
    /// Sums over all accounts, without overflow.
    func ledgerTotals() async throws -> LedgerTotals
}

extension LedgerRows {
    /// Calls ``saveBalances(_:)``, then ``insertTransfers(_:)``, each only when it has rows.
    public func saveBalances(_ accounts: [Account], insertingTransfers transfers: [StoredTransfer]) async throws {
        try await saveBalancesThenInsertTransfers(accounts, transfers)
    }

    /// The default's two calls, for a conformance that writes both in one statement only where
    /// its database can.
    package func saveBalancesThenInsertTransfers(_ accounts: [Account], _ transfers: [StoredTransfer]) async throws {
        if !accounts.isEmpty { try await saveBalances(accounts) }
        if !transfers.isEmpty { try await insertTransfers(transfers) }
    }
}
