import Unrace

/// Three accounts of `ledger` named after `prefix` — equity, a wallet that may not go below zero
/// and a shop — with the wallet funded from equity by `funds`.
func fundedWallet<S: Store>(
    _ ledger: Ledger<S>,
    prefix: String,
    funds: Int64 = 100
) async throws -> (equity: String, wallet: String, shop: String) {
    let (equity, wallet, shop) = ("\(prefix)-equity", "\(prefix)-wallet", "\(prefix)-shop")
    _ = try await ledger.createAccounts([
        Account(id: equity, ledger: 1, code: 1), Account(id: wallet, ledger: 1, code: 2, flags: .debitsMustNotExceedCredits),
        Account(id: shop, ledger: 1, code: 3),
    ])
    _ = try await ledger.submit([Transfer(id: "\(prefix)-fund", debit: equity, credit: wallet, amount: funds)])
    return (equity, wallet, shop)
}
