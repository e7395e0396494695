/// Where an operation key stands.
///
/// ```
///           claim            complete(success)
///  (absent) ─────▶ running ──────────────────▶ succeeded   (terminal, replayed)
///                  │  ▲   └─fail(terminal)───▶ failed      (terminal, replayed)
///                  │  └ takeover after the lease ends (token + 1)
///                  └─fail(retryable)──▶ released ──claim──▶ running (token + 1)
/// ```
public enum OperationState: String, Sendable, Hashable, Codable, CaseIterable {
    /// A holder owns the key until its lease ends.
    case running
    /// The operation completed; its outcome is replayed to every duplicate.
    case succeeded
    /// The operation failed for good; the failure is replayed to every duplicate.
    case failed
    /// A retryable failure released the key; the next claim acquires it.
    case released

    /// Whether the operation has been logically completed (succeeded or failed for good).
    public var isTerminal: Bool { self == .succeeded || self == .failed }
}

/// Everything a store keeps about one operation key.
public struct OperationRecord: Sendable, Hashable {
    /// The scope the key lives in.
    public var scope: Scope
    /// The business operation key.
    public var key: OperationKey
    /// The fingerprint of the request that first used the key.
    public var fingerprint: Fingerprint
    /// Where the operation stands.
    public var state: OperationState
    /// The current fencing token.
    public var token: FencingToken
    /// Who holds (or last held) the key.
    public var holder: String
    /// When the current holder's lease ends; meaningful while ``state`` is `running`.
    public var leaseUntil: Timestamp
    /// The last recovery point a holder saved with a checkpoint, if any.
    public var recoveryPoint: [UInt8]?
    /// The stored outcome (the encoded result or failure) once terminal.
    public var outcome: [UInt8]?
    /// When the record was created.
    public var createdAt: Timestamp
    /// When the operation reached a terminal state.
    public var completedAt: Timestamp?
    /// When a terminal record may be purged (completion time plus retention).
    public var expiresAt: Timestamp?

    /// Creates a record.
    public init(
        scope: Scope,
        key: OperationKey,
        fingerprint: Fingerprint,
        state: OperationState,
        token: FencingToken,
        holder: String,
        leaseUntil: Timestamp,
        recoveryPoint: [UInt8]? = nil,
        outcome: [UInt8]? = nil,
        createdAt: Timestamp,
        completedAt: Timestamp? = nil,
        expiresAt: Timestamp? = nil
    ) {
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.state = state
        self.token = token
        self.holder = holder
        self.leaseUntil = leaseUntil
        self.recoveryPoint = recoveryPoint
        self.outcome = outcome
        self.createdAt = createdAt
        self.completedAt = completedAt
        self.expiresAt = expiresAt
    }
}
