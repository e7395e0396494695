/// An account of the double-entry ledger: debits and credits, pending and posted.
public struct Account: Sendable, Hashable, Codable {
    /// Account flags.
    public struct Flags: OptionSet, Sendable, Hashable, Codable {
        /// The stored bits.
        public let rawValue: Int64
        /// Creates flags from their stored bits.
        public init(rawValue: Int64) { self.rawValue = rawValue }
        /// Debits (pending and posted) may never exceed posted credits: a wallet that cannot overdraw.
        public static let debitsMustNotExceedCredits = Flags(rawValue: 1 << 0)
        /// Credits (pending and posted) may never exceed posted debits.
        public static let creditsMustNotExceedDebits = Flags(rawValue: 1 << 1)
        /// The account takes no new transfers.
        public static let closed = Flags(rawValue: 1 << 2)
    }

    /// The client-chosen id: ``NameRule/accountID`` (1 to 255 printable bytes, kept in NFC).
    public var id: String
    /// The ledger (currency, asset) the account is in; transfers stay within one ledger.
    public var ledger: Int64
    /// A code the application chooses (the account's kind).
    public var code: Int64
    /// The flags.
    public var flags: Flags
    /// Pending debits.
    public var debitsPending: Int64 = 0
    /// Posted debits.
    public var debitsPosted: Int64 = 0
    /// Pending credits.
    public var creditsPending: Int64 = 0
    /// Posted credits.
    public var creditsPosted: Int64 = 0

    /// Creates an account with zero balances.
    public init(id: String, ledger: Int64, code: Int64, flags: Flags = []) {
        self.id = id
        self.ledger = ledger
        self.code = code
        self.flags = flags
    }

    /// Posted credits minus posted debits, clamped to `Int64`'s range (a ledger keeps each total
    /// within it; only a value built by hand can reach past it).
    public var balance: Int64 { Int64(clamping: Int128(creditsPosted) - Int128(debitsPosted)) }
}

/// A transfer between two accounts.
public struct Transfer: Sendable, Hashable, Codable {
    /// Transfer flags.
    public struct Flags: OptionSet, Sendable, Hashable, Codable {
        /// The stored bits.
        public let rawValue: Int64
        /// Creates flags from their stored bits.
        public init(rawValue: Int64) { self.rawValue = rawValue }
        /// This transfer and the next form a chain that succeeds or fails as a unit; the last
        /// transfer of a chain does not carry the flag.
        public static let linked = Flags(rawValue: 1 << 0)
        /// Reserve the amount (pending) until posted, voided or timed out.
        public static let pending = Flags(rawValue: 1 << 1)
        /// Post the pending transfer named by `pendingID`.
        public static let postPending = Flags(rawValue: 1 << 2)
        /// Void the pending transfer named by `pendingID`.
        public static let voidPending = Flags(rawValue: 1 << 3)
    }

    /// The client-chosen unique id, ``NameRule/transferID`` (1 to 255 printable bytes, kept in
    /// NFC): a repeat is `exists`, never a second transfer.
    public var id: String
    /// The account debited.
    public var debitAccount: String
    /// The account credited.
    public var creditAccount: String
    /// The amount, 1 to `Int64.max` (for post-pending, 0 means the pending amount).
    public var amount: Int64
    /// The ledger; must be the accounts' ledger.
    public var ledger: Int64
    /// A code the application chooses (the transfer's reason).
    public var code: Int64
    /// The flags.
    public var flags: Flags
    /// The pending transfer a post or void refers to.
    public var pendingID: String?
    /// For a pending transfer: how long it holds its amount before it expires (0 = never).
    public var timeoutMilliseconds: Int64

    /// Creates a transfer.
    public init(
        id: String,
        debit: String,
        credit: String,
        amount: Int64,
        ledger: Int64 = 1,
        code: Int64 = 1,
        flags: Flags = [],
        pendingID: String? = nil,
        timeoutMilliseconds: Int64 = 0
    ) {
        self.id = id
        self.debitAccount = debit
        self.creditAccount = credit
        self.amount = amount
        self.ledger = ledger
        self.code = code
        self.flags = flags
        self.pendingID = pendingID
        self.timeoutMilliseconds = timeoutMilliseconds
    }
}

/// A transfer as stored, with its state.
public struct StoredTransfer: Sendable, Hashable, Codable {
    /// Where a stored transfer stands.
    public enum State: String, Sendable, Hashable, Codable {
        /// Posted: the amount moved.
        case posted
        /// Pending: the amount is reserved.
        case pending
        /// A pending transfer that was posted.
        case pendingPosted = "pending_posted"
        /// A pending transfer that was voided.
        case pendingVoided = "pending_voided"
        /// A pending transfer whose timeout passed.
        case pendingExpired = "pending_expired"
    }

    /// The transfer as submitted (for post-pending with amount 0, the amount actually posted).
    public var transfer: Transfer
    /// Its state.
    public var state: State
    /// When it was created.
    public var createdAt: Timestamp
    /// When a pending transfer expires (`nil` = never).
    public var expiresAt: Timestamp?

    /// Creates a stored transfer.
    public init(transfer: Transfer, state: State, createdAt: Timestamp, expiresAt: Timestamp?) {
        self.transfer = transfer
        self.state = state
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

/// The result of one transfer in a batch: stable codes, only ever added, never renamed.
///
/// Where several apply, the first the engine checks is reported, in this order: the chain
/// (`linked_event_*`); the id (`exists`, `exists_with_different_*`, `id_already_failed`); the
/// accounts (not found, ledgers, closed); for a post or void, its pending transfer (not found,
/// not pending, already posted or voided, released as expired), then that transfer's accounts
/// (`pending_transfer_has_different_accounts`), then its timeout (`pending_transfer_expired`),
/// then the amount (`exceeds_pending_transfer_amount`); and last the balances:
/// `overflows_balance` before `exceeds_credits` and `exceeds_debits`.
public enum TransferResult: Sendable, Hashable, Codable {
    /// The transfer was applied.
    case created
    /// A transfer of the chain failed, so this one was not applied.
    case linkedEventFailed
    /// The batch ended in the middle of a linked chain.
    case linkedEventChainOpen
    /// The same transfer was already applied: nothing happened again.
    case exists
    /// A transfer with this id exists with a different `field`.
    case existsWithDifferent(field: String)
    /// A transfer with this id failed before; it stays failed.
    case idAlreadyFailed
    /// The debit account does not exist.
    case debitAccountNotFound
    /// The credit account does not exist.
    case creditAccountNotFound
    /// The accounts are in different ledgers.
    case accountsMustHaveTheSameLedger
    /// The transfer's ledger is not its accounts' ledger.
    case transferMustHaveTheSameLedgerAsAccounts
    /// The debit account is closed.
    case debitAccountClosed
    /// The credit account is closed.
    case creditAccountClosed
    /// The pending transfer a post or void names does not exist.
    case pendingTransferNotFound
    /// The transfer a post or void names is not pending.
    case pendingTransferNotPending
    /// The pending transfer was already posted.
    case pendingTransferAlreadyPosted
    /// The pending transfer was already voided.
    case pendingTransferAlreadyVoided
    /// The pending transfer's timeout passed.
    case pendingTransferExpired
    /// A post or void names other accounts or ledger than its pending transfer.
    case pendingTransferHasDifferentAccounts
    /// A post would move more than the pending amount.
    case exceedsPendingTransferAmount
    /// The debit account's debits would exceed its credits.
    case exceedsCredits
    /// The credit account's credits would exceed its debits.
    case exceedsDebits
    /// A balance would pass the largest representable amount.
    case overflowsBalance

    /// The stable string code.
    public var code: String {
        switch self {
        case .created: "created"
        case .linkedEventFailed: "linked_event_failed"
        case .linkedEventChainOpen: "linked_event_chain_open"
        case .exists: "exists"
        case .existsWithDifferent(let field): "exists_with_different_\(field)"
        case .idAlreadyFailed: "id_already_failed"
        case .debitAccountNotFound: "debit_account_not_found"
        case .creditAccountNotFound: "credit_account_not_found"
        case .accountsMustHaveTheSameLedger: "accounts_must_have_the_same_ledger"
        case .transferMustHaveTheSameLedgerAsAccounts: "transfer_must_have_the_same_ledger_as_accounts"
        case .debitAccountClosed: "debit_account_closed"
        case .creditAccountClosed: "credit_account_closed"
        case .pendingTransferNotFound: "pending_transfer_not_found"
        case .pendingTransferNotPending: "pending_transfer_not_pending"
        case .pendingTransferAlreadyPosted: "pending_transfer_already_posted"
        case .pendingTransferAlreadyVoided: "pending_transfer_already_voided"
        case .pendingTransferExpired: "pending_transfer_expired"
        case .pendingTransferHasDifferentAccounts: "pending_transfer_has_different_accounts"
        case .exceedsPendingTransferAmount: "exceeds_pending_transfer_amount"
        case .exceedsCredits: "exceeds_credits"
        case .exceedsDebits: "exceeds_debits"
        case .overflowsBalance: "overflows_balance"
        }
    }

    /// Whether the transfer was applied (`created`) or had been (`exists`).
    public var isSuccess: Bool { self == .created || self == .exists }
}

/// The result of creating one account.
public enum AccountResult: Sendable, Hashable, Codable {
    /// Created.
    case created
    /// The same account already exists.
    case exists
    /// An account with this id exists with a different `field`.
    case existsWithDifferent(field: String)

    /// Compares a requested account with an existing one.
    public static func compare(_ new: Account, _ old: Account) -> AccountResult {
        if new.ledger != old.ledger { return .existsWithDifferent(field: "ledger") }
        if new.code != old.code { return .existsWithDifferent(field: "code") }
        if new.flags != old.flags { return .existsWithDifferent(field: "flags") }
        return .exists
    }
}

/// Sums over every account: double entry keeps posted debits equal to posted credits (and
/// pending to pending), whatever happens.
///
/// Each account's balances stay within `Int64` (a transfer that would pass it is refused with
/// ``TransferResult/overflowsBalance``); sums over many accounts may not, so totals are 128-bit.
public struct LedgerTotals: Sendable, Hashable, Codable {
    /// The sum of posted debits.
    public var debitsPosted: Int128
    /// The sum of posted credits.
    public var creditsPosted: Int128
    /// The sum of pending debits.
    public var debitsPending: Int128
    /// The sum of pending credits.
    public var creditsPending: Int128

    /// Creates totals.
    public init(debitsPosted: Int128, creditsPosted: Int128, debitsPending: Int128, creditsPending: Int128) {
        self.debitsPosted = debitsPosted
        self.creditsPosted = creditsPosted
        self.debitsPending = debitsPending
        self.creditsPending = creditsPending
    }

    /// Totals of nothing.
    public static let zero = LedgerTotals(debitsPosted: 0, creditsPosted: 0, debitsPending: 0, creditsPending: 0)

    /// The totals with one more account's balances added.
    public func adding(_ account: Account) -> LedgerTotals {
        LedgerTotals(
            debitsPosted: debitsPosted + Int128(account.debitsPosted),
            creditsPosted: creditsPosted + Int128(account.creditsPosted),
            debitsPending: debitsPending + Int128(account.debitsPending),
            creditsPending: creditsPending + Int128(account.creditsPending)
        )
    }

    /// Whether money was conserved.
    public var isBalanced: Bool { debitsPosted == creditsPosted && debitsPending == creditsPending }
}
