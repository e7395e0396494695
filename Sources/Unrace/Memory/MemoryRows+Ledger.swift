import UnraceCore

extension MemoryRows: LedgerRows {
    func accounts(_ ids: [String], lock: Bool) async throws -> [String: Account] {
        read { state in
            var found: [String: Account] = [:]
            for id in ids { if let account = state.accounts[id] { found[id] = account } }
            return found
        }
    }

    func insertAccounts(_ accounts: [Account], now: Timestamp) async throws {
        read { state in for account in accounts { state.accounts[account.id] = account } }
    }

    func saveBalances(_ accounts: [Account]) async throws {
        read { state in for account in accounts { state.accounts[account.id] = account } }
    }

    func transfers(_ ids: [String]) async throws -> (stored: [String: StoredTransfer], failed: Set<String>) {
        read { state in
            var stored: [String: StoredTransfer] = [:]
            var failed: Set<String> = []
            for id in ids {
                if let transfer = state.transfers[id] { stored[id] = transfer }
                if state.failedTransfers[id] != nil { failed.insert(id) }
            }
            return (stored, failed)
        }
    }

    func expiredPendingTransfers(at now: Timestamp, touching accounts: [String]?, limit: Int) async throws -> [StoredTransfer] {
        read { state in
            let touching = accounts.map(Set.init)
            return Array(
                state.pendingTransfers.compactMap { state.transfers[$0] }
                    .filter { pending in
                        guard pending.state == .pending, let expiresAt = pending.expiresAt, expiresAt <= now else { return false }
                        guard let touching else { return true }
                        return touching.contains(pending.transfer.debitAccount) || touching.contains(pending.transfer.creditAccount)
                    }
                    .sorted { ($0.expiresAt!, $0.transfer.id) < ($1.expiresAt!, $1.transfer.id) }
                    .prefix(max(0, limit))
            )
        }
    }

    func insertTransfers(_ transfers: [StoredTransfer]) async throws {
        read { state in
            for transfer in transfers {
                state.transfers[transfer.transfer.id] = transfer
                if transfer.state == .pending { state.pendingTransfers.insert(transfer.transfer.id) }
            }
        }
    }

    func saveTransferStates(_ transfers: [StoredTransfer]) async throws {
        read { state in
            for transfer in transfers {
                state.transfers[transfer.transfer.id]?.state = transfer.state
                if transfer.state != .pending { state.pendingTransfers.remove(transfer.transfer.id) }
            }
        }
    }

    func insertTransferFailures(_ failures: [(id: String, code: String)], now: Timestamp) async throws {
        read { state in
            for failure in failures where state.failedTransfers[failure.id] == nil { state.failedTransfers[failure.id] = failure.code }
        }
    }

    func ledgerTotals() async throws -> LedgerTotals {
        read { state in state.accounts.values.reduce(LedgerTotals.zero) { $0.adding($1) } }
    }
}
