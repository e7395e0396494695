public import UnraceCore

/// The rows of ``Operations``: one record per key, locked for a claim.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol OperationRows: StepTime {
    /// The record of a key, without locking it.
    func operation(scope: Scope, key: OperationKey) async throws -> OperationRecord?
    /// Locks a key for a claim: its record, or — when it has none — the key itself, so that no
    /// concurrent step can claim it until this one ends.
    func lockOperation(_ claim: ClaimTemplate) async throws -> OperationLock
    /// Locks and returns the record of a key, if it has one (for a holder's write).
    func lockOperation(scope: Scope, key: OperationKey) async throws -> OperationRecord?
    /// Writes a record: inserts it when `isNew` (the key had no row), else replaces it.
    func saveOperation(_ record: OperationRecord, isNew: Bool) async throws
    /// Records of `scope` (of every scope when `nil`) whose expiry is at or before `now`, earliest
    /// first (ties by scope, then key, byte-wise), at most `limit`, locked.
    func expiredOperations(scope: Scope?, at now: Timestamp, limit: Int) async throws -> [OperationRecord]
    /// Deletes the records of these keys.
    func deleteOperations(scope: Scope, keys: [OperationKey]) async throws
}

/// What a claim finds when it locks a key.
public enum OperationLock: Sendable, Hashable {
    /// The key has a record: decide on it.
    case existing(OperationRecord)
    /// The key has no record, and no concurrent step can give it one until this step ends. The
    /// claim's record is written by ``OperationRows/saveOperation(_:isNew:)`` with `isNew`.
    case absent
    /// The key had no record, and the store has already written the fresh claim's record
    /// (``ClaimDecision/insert`` at ``StepTime/now()``) to hold the key: a store with concurrent
    /// writers (PostgreSQL) inserts first so a concurrent duplicate waits on it. Later writes of
    /// the record replace it.
    case reserved
}

/// What a claim asks a store to lock: enough for a store that inserts the fresh claim first to
/// write it.
public struct ClaimTemplate: Sendable, Hashable {
    /// The scope of the key.
    public var scope: Scope
    /// The key.
    public var key: OperationKey
    /// The claimer's fingerprint.
    public var fingerprint: Fingerprint
    /// The claimer's name.
    public var holder: String
    /// The lease a fresh claim gets.
    public var lease: Duration
    /// The retention after the lease (a running record expires at its lease end plus this).
    public var retention: Duration

    /// A claim's template.
    public init(scope: Scope, key: OperationKey, fingerprint: Fingerprint, holder: String, lease: Duration, retention: Duration) {
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.holder = holder
        self.lease = lease
        self.retention = retention
    }

    /// The claim request at `now`.
    public func request(at now: Timestamp) -> ClaimRequest {
        ClaimRequest(
            scope: scope,
            key: key,
            fingerprint: fingerprint,
            holder: holder,
            now: now,
            leaseUntil: now + lease,
            retention: retention
        )
    }
}
