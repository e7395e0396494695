/// The ledger's rules, as a pure function over a snapshot: every store locks the accounts a batch
/// touches, reads them and the transfers it names, runs ``apply(_:now:)``, and writes the result —
/// so SQLite, PostgreSQL, memory and the simulator apply exactly the same rules.
public struct LedgerEngine: Sendable {
    /// The accounts the batch touches, by id (absent ids do not exist).
    public var accounts: [String: Account]
    /// The stored transfers the batch names (its ids and the pending ids it refers to).
    public var transfers: [String: StoredTransfer]
    /// Ids whose first attempt failed.
    public var failed: Set<String>

    /// What the batch changed, for the store to write.
    public struct Changes: Sendable, Hashable {
        /// Accounts whose balances changed, by id.
        public var accounts: [String: Account] = [:]
        /// New transfers, in batch order.
        public var created: [StoredTransfer] = []
        /// Existing (pending) transfers whose state changed, by id.
        public var updated: [String: StoredTransfer] = [:]
        /// Ids that failed for the first time, with their result code.
        public var failures: [String: String] = [:]
    }

    /// Starts from a snapshot.
    public init(accounts: [String: Account], transfers: [String: StoredTransfer], failed: Set<String>) {
        self.accounts = accounts
        self.transfers = transfers
        self.failed = failed
    }

    /// The ids of the accounts and transfers a batch needs in its snapshot.
    public static func snapshotIDs(of batch: [Transfer]) -> (accounts: [String], transfers: [String]) {
        let accounts = Set(batch.flatMap { [$0.debitAccount, $0.creditAccount] })
        let transfers = Set(batch.map(\.id) + batch.compactMap(\.pendingID))
        return (accounts.sorted(), transfers.sorted())
    }

    /// Applies a batch in order; a linked chain succeeds or fails as a unit.
    ///
    /// `expired` are pending transfers the store found past their timeout on the batch's
    /// accounts: they are released first (their amounts go back to both accounts, their state
    /// becomes `pendingExpired`), so no balance check counts an expired pending. Those whose
    /// accounts are not in the snapshot are left for another step.
    /// - Returns: one result per transfer, and the changes to write.
    public mutating func apply(
        _ batch: [Transfer],
        now: Timestamp,
        expired: [StoredTransfer] = []
    ) -> (results: [TransferResult], changes: Changes) {
        var results: [TransferResult] = []
        var changes = Changes()
        for pending in expired where pending.state == .pending && (pending.expiresAt.map { $0 <= now } ?? false) {
            if transfers[pending.transfer.id] == nil { transfers[pending.transfer.id] = pending }
            expiring.insert(pending.transfer.id)
        }
        releaseExpired(&changes)
        var index = 0
        while index < batch.count {
            var end = index
            while end < batch.count - 1, batch[end].flags.contains(.linked) { end += 1 }
            let chain = batch[index...end]
            if chain.last!.flags.contains(.linked) {  // the batch ended inside the chain
                results += chain.dropLast().map { _ in .linkedEventFailed } + [.linkedEventChainOpen]
                index = end + 1
                continue
            }
            // A lone transfer checks every rule before it changes anything, so only a real chain
            // needs a checkpoint to roll back to (copying the state per transfer would make a
            // batch quadratic).
            let checkpoint = chain.count > 1 ? (self, changes) : nil
            var chainResults: [TransferResult] = []
            var failure: (offset: Int, result: TransferResult)?
            for (offset, transfer) in chain.enumerated() {
                let result = applyOne(transfer, now: now, &changes)
                chainResults.append(result)
                if !result.isSuccess {
                    failure = (offset, result)
                    break
                }
            }
            if let failure {
                if let checkpoint {
                    let expired = expiring
                    (self, changes) = checkpoint
                    expiring = expired
                }
                chainResults = chain.indices.map { _ in .linkedEventFailed }
                chainResults[failure.offset] = failure.result
                // An id that failed on its own stays failed; `exists…` and `idAlreadyFailed` are
                // answers about an earlier attempt, not a new failure.
                let failedID = chain[chain.startIndex + failure.offset].id
                if failure.result.recordsFailure, transfers[failedID] == nil {
                    failed.insert(failedID)
                    changes.failures[failedID] = failure.result.code
                }
            }
            results += chainResults
            index = end + 1
            releaseExpired(&changes)
        }
        return (results, changes)
    }

    /// Pending transfers found past their timeout: their amounts go back to their accounts.
    private var expiring: Set<String> = []

    private mutating func releaseExpired(_ changes: inout Changes) {
        for id in expiring.sorted() {
            guard var pending = transfers[id], pending.state == .pending,
                var debit = accounts[pending.transfer.debitAccount], var credit = accounts[pending.transfer.creditAccount]
            else { continue }
            debit.debitsPending = debit.debitsPending.clampedSubtracting(pending.transfer.amount)
            credit.creditsPending = credit.creditsPending.clampedSubtracting(pending.transfer.amount)
            pending.state = .pendingExpired
            commit(debit, credit, pending: pending, &changes)
        }
        expiring.removeAll()
    }

    private mutating func applyOne(_ transfer: Transfer, now: Timestamp, _ changes: inout Changes) -> TransferResult {
        if let existing = transfers[transfer.id] {
            // A post of amount 0 asks for the whole pending amount; the post stored the amount it
            // moved, so a repeat is compared by what it asks for (a partial post repeated as
            // "all" differs).
            var asked = transfer
            if asked.flags.contains(.postPending), asked.amount == 0, let pendingID = asked.pendingID, let held = transfers[pendingID] {
                asked.amount = held.transfer.amount
            }
            if let field = Self.differingField(asked, existing.transfer) { return .existsWithDifferent(field: field) }
            return .exists
        }
        if failed.contains(transfer.id) { return .idAlreadyFailed }
        guard var debit = accounts[transfer.debitAccount] else { return .debitAccountNotFound }
        guard var credit = accounts[transfer.creditAccount] else { return .creditAccountNotFound }
        guard debit.ledger == credit.ledger else { return .accountsMustHaveTheSameLedger }
        guard transfer.ledger == debit.ledger else { return .transferMustHaveTheSameLedgerAsAccounts }
        let isVoid = transfer.flags.contains(.voidPending)
        if !isVoid {
            if debit.flags.contains(.closed) { return .debitAccountClosed }
            if credit.flags.contains(.closed) { return .creditAccountClosed }
        }

        var stored = StoredTransfer(transfer: transfer, state: .posted, createdAt: now, expiresAt: nil)
        if transfer.flags.contains(.postPending) || isVoid {
            guard let pendingID = transfer.pendingID, var pending = transfers[pendingID] else { return .pendingTransferNotFound }
            switch pending.state {
            case .pending: break
            case .posted: return .pendingTransferNotPending
            case .pendingPosted: return .pendingTransferAlreadyPosted
            case .pendingVoided: return .pendingTransferAlreadyVoided
            case .pendingExpired: return .pendingTransferExpired
            }
            let held = pending.transfer
            guard held.debitAccount == transfer.debitAccount, held.creditAccount == transfer.creditAccount, held.ledger == transfer.ledger
            else { return .pendingTransferHasDifferentAccounts }
            if let expiresAt = pending.expiresAt, expiresAt <= now {
                expiring.insert(pendingID)  // released after the chain, whatever its fate
                return .pendingTransferExpired
            }
            let posted = transfer.amount == 0 ? held.amount : transfer.amount
            guard posted <= held.amount else { return .exceedsPendingTransferAmount }
            debit.debitsPending = debit.debitsPending.clampedSubtracting(held.amount)
            credit.creditsPending = credit.creditsPending.clampedSubtracting(held.amount)
            if !isVoid {
                guard let debits = Self.add(debit.debitsPosted, posted), let credits = Self.add(credit.creditsPosted, posted)
                else { return .overflowsBalance }
                debit.debitsPosted = debits
                credit.creditsPosted = credits
                stored.transfer.amount = posted
            }
            pending.state = isVoid ? .pendingVoided : .pendingPosted
            if let violation = Self.violation(debit, credit) { return violation }
            commit(debit, credit, pending: pending, &changes)
        } else if transfer.flags.contains(.pending) {
            guard let debits = Self.add(debit.debitsPending, transfer.amount),
                let credits = Self.add(credit.creditsPending, transfer.amount),
                Self.add(debits, debit.debitsPosted) != nil, Self.add(credits, credit.creditsPosted) != nil
            else { return .overflowsBalance }
            debit.debitsPending = debits
            credit.creditsPending = credits
            if let violation = Self.violation(debit, credit) { return violation }
            stored.state = .pending
            stored.expiresAt = transfer.timeoutMilliseconds > 0 ? now + .milliseconds(transfer.timeoutMilliseconds) : nil
            commit(debit, credit, pending: nil, &changes)
        } else {
            guard let debits = Self.add(debit.debitsPosted, transfer.amount), let credits = Self.add(credit.creditsPosted, transfer.amount),
                Self.add(debits, debit.debitsPending) != nil, Self.add(credits, credit.creditsPending) != nil
            else { return .overflowsBalance }
            debit.debitsPosted = debits
            credit.creditsPosted = credits
            if let violation = Self.violation(debit, credit) { return violation }
            commit(debit, credit, pending: nil, &changes)
        }
        transfers[transfer.id] = stored
        changes.created.append(stored)
        return .created
    }

    private mutating func commit(_ debit: Account, _ credit: Account, pending: StoredTransfer?, _ changes: inout Changes) {
        accounts[debit.id] = debit
        accounts[credit.id] = credit
        changes.accounts[debit.id] = debit
        changes.accounts[credit.id] = credit
        if let pending {
            transfers[pending.transfer.id] = pending
            changes.updated[pending.transfer.id] = pending
        }
    }

    /// The balance rule an account would break, if any.
    static func violation(_ debit: Account, _ credit: Account) -> TransferResult? {
        // In 128 bits: total for snapshots built by hand, whose sums may pass Int64.
        if debit.flags.contains(.debitsMustNotExceedCredits),
            Int128(debit.debitsPending) + Int128(debit.debitsPosted) > Int128(debit.creditsPosted)
        {
            return .exceedsCredits
        }
        if credit.flags.contains(.creditsMustNotExceedDebits),
            Int128(credit.creditsPending) + Int128(credit.creditsPosted) > Int128(credit.debitsPosted)
        {
            return .exceedsDebits
        }
        return nil
    }

    static func add(_ a: Int64, _ b: Int64) -> Int64? {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : sum
    }

    static func differingField(_ new: Transfer, _ old: Transfer) -> String? {
        if new.debitAccount != old.debitAccount { return "debit_account" }
        if new.creditAccount != old.creditAccount { return "credit_account" }
        if new.amount != old.amount && !(new.flags.contains(.postPending) && new.amount == 0) { return "amount" }
        if new.ledger != old.ledger { return "ledger" }
        if new.code != old.code { return "code" }
        if new.flags != old.flags { return "flags" }
        if new.pendingID != old.pendingID { return "pending_id" }
        if new.timeoutMilliseconds != old.timeoutMilliseconds { return "timeout" }
        return nil
    }
}

extension TransferResult {
    /// Whether this result, on a transfer's first attempt, marks its id as failed for good.
    var recordsFailure: Bool {
        switch self {
        case .created, .exists, .existsWithDifferent, .idAlreadyFailed, .linkedEventFailed, .linkedEventChainOpen: false
        default: true
        }
    }
}

extension Transfer {
    /// The largest id, in UTF-8 bytes.
    public static let idByteCountMaximum = 255

    /// Checks what needs no stored state — ids, amount, accounts, flags — and returns the
    /// transfer with its ids in NFC. A transfer that fails here is bad input, refused before
    /// anything is written.
    /// - Throws: ``UnraceError/Code/invalidArgument`` naming the rule.
    public func validated() throws -> Transfer {
        var transfer = self
        transfer.id = try NameRule.transferID.validate(id)
        transfer.debitAccount = try NameRule(kind: "debit account id").validate(debitAccount)
        transfer.creditAccount = try NameRule(kind: "credit account id").validate(creditAccount)
        transfer.pendingID = try pendingID.map { try NameRule(kind: "pending transfer id").validate($0) }
        guard transfer.debitAccount != transfer.creditAccount else {
            throw UnraceError(.invalidArgument, "a transfer's debit and credit accounts must differ")
        }
        let kinds = flags.intersection([.pending, .postPending, .voidPending])
        guard kinds.rawValue.nonzeroBitCount <= 1 else {
            throw UnraceError(.invalidArgument, "a transfer is at most one of pending, postPending and voidPending")
        }
        guard Flags.all.isSuperset(of: flags) else {
            throw UnraceError(.invalidArgument, "a transfer's flags have unknown bits set")
        }
        let settles = flags.contains(.postPending) || flags.contains(.voidPending)
        guard settles == (pendingID != nil) else {
            throw UnraceError(.invalidArgument, "pendingID is required by, and only allowed for, postPending and voidPending")
        }
        let minimum: Int64 = settles ? 0 : 1
        guard amount >= minimum else {
            throw UnraceError(.invalidArgument, "a transfer's amount must be \(minimum) or more")
        }
        guard ledger >= 1 else { throw UnraceError(.invalidArgument, "a transfer's ledger must be 1 or more") }
        guard timeoutMilliseconds >= 0, timeoutMilliseconds == 0 || flags.contains(.pending) else {
            throw UnraceError(.invalidArgument, "a timeout is only for pending transfers, and not negative")
        }
        guard timeoutMilliseconds <= Self.timeoutMillisecondsMaximum else {
            throw UnraceError(.invalidArgument, "a pending transfer's timeout must be at most 366 days")
        }
        return transfer
    }

    /// The longest pending timeout accepted: 366 days, in milliseconds.
    public static let timeoutMillisecondsMaximum: Int64 = 366 * 86_400_000

    /// Checks the transfer like ``validated()``.
    public func validate() throws { _ = try validated() }
}

extension Transfer.Flags {
    /// Every flag Unrace knows.
    static let all: Transfer.Flags = [.linked, .pending, .postPending, .voidPending]
}

extension Account {
    /// Checks a new account — its id (``NameRule/accountID``), ledger, flags and zero balances —
    /// and returns it with its id in NFC.
    /// - Throws: ``UnraceError/Code/invalidArgument`` naming the rule.
    public func validated() throws -> Account {
        var account = self
        account.id = try NameRule.accountID.validate(id)
        guard ledger >= 1 else { throw UnraceError(.invalidArgument, "an account's ledger must be 1 or more") }
        guard Flags([.debitsMustNotExceedCredits, .creditsMustNotExceedDebits, .closed]).isSuperset(of: flags) else {
            throw UnraceError(.invalidArgument, "an account's flags have unknown bits set")
        }
        guard debitsPending == 0, debitsPosted == 0, creditsPending == 0, creditsPosted == 0 else {
            throw UnraceError(.invalidArgument, "accounts are created with zero balances; move money with transfers")
        }
        return account
    }
}

extension Int64 {
    /// `self + other`, clamped to `Int64`'s range: the rules stay total for values a caller built
    /// by hand (stored values never reach the bounds).
    package func clampedAdding(_ other: Int64) -> Int64 { Int64(clamping: Int128(self) + Int128(other)) }
    /// `self - other`, clamped to `Int64`'s range.
    package func clampedSubtracting(_ other: Int64) -> Int64 { Int64(clamping: Int128(self) - Int128(other)) }
}
