/// A request to own an operation key for a lease.
public struct ClaimRequest: Sendable, Hashable {
    /// The scope the key lives in.
    public var scope: Scope
    /// The business operation key.
    public var key: OperationKey
    /// The fingerprint of this request.
    public var fingerprint: Fingerprint
    /// Who is claiming (for diagnostics and for "in progress" answers).
    public var holder: String
    /// The time the claim is decided at: the store's step time (the database's clock on
    /// PostgreSQL, the caller's clock on one-machine stores).
    public var now: Timestamp
    /// When the lease would end if the claim succeeds.
    public var leaseUntil: Timestamp
    /// How long the record is kept after its lease ends if nobody completes it (and after
    /// completion): a running record expires at `leaseUntil + retention`.
    public var retention: Duration

    /// Creates a claim request.
    public init(
        scope: Scope,
        key: OperationKey,
        fingerprint: Fingerprint,
        holder: String,
        now: Timestamp,
        leaseUntil: Timestamp,
        retention: Duration = .seconds(86_400)
    ) {
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.holder = holder
        self.now = now
        self.leaseUntil = leaseUntil
        self.retention = retention
    }
}

/// What a store must do with a claim, decided from the stored record alone.
///
/// This is the single place where the rules of ownership live: Unrace's claim step reads (and
/// locks) the record through the store's rows, asks ``decide(existing:request:)``, and performs
/// the answer inside the same atomic step, on every store.
public enum ClaimDecision: Sendable, Hashable {
    /// No record: insert one as `running` with ``FencingToken/first``.
    case insert
    /// The key was released, or its holder's lease ended: take it over with `token.next`,
    /// keeping the recovery point so the new holder resumes where the old one stopped.
    case takeOver(token: FencingToken, recoveryPoint: [UInt8]?)
    /// Another holder's lease is still running.
    case inProgress(holder: String, leaseUntil: Timestamp)
    /// The operation was logically completed: replay its outcome.
    case completed(OperationRecord)
    /// The key was used with a different request.
    case fingerprintMismatch

    /// Decides a claim. Pure: the same inputs always give the same answer.
    public static func decide(existing: OperationRecord?, request: ClaimRequest) -> ClaimDecision {
        guard let existing else { return .insert }
        guard request.fingerprint.matches(existing.fingerprint) else { return .fingerprintMismatch }
        switch existing.state {
        case .succeeded, .failed:
            return .completed(existing)
        case .released:
            return .takeOver(token: existing.token.next, recoveryPoint: existing.recoveryPoint)
        case .running:
            // A lease ending exactly now has ended: `leaseUntil` is exclusive.
            if existing.leaseUntil <= request.now {
                return .takeOver(token: existing.token.next, recoveryPoint: existing.recoveryPoint)
            }
            return .inProgress(holder: existing.holder, leaseUntil: existing.leaseUntil)
        }
    }

    /// The record a store writes for an acquiring decision (``insert`` or ``takeOver(token:recoveryPoint:)``), or `nil`
    /// when the decision does not acquire the key.
    public func acquiredRecord(for request: ClaimRequest, existing: OperationRecord?) -> OperationRecord? {
        switch self {
        case .insert:
            return OperationRecord(
                scope: request.scope,
                key: request.key,
                fingerprint: request.fingerprint,
                state: .running,
                token: .first,
                holder: request.holder,
                leaseUntil: request.leaseUntil,
                createdAt: request.now,
                expiresAt: request.leaseUntil + request.retention
            )
        case .takeOver(let token, let recoveryPoint):
            var record =
                existing
                ?? OperationRecord(
                    scope: request.scope,
                    key: request.key,
                    fingerprint: request.fingerprint,
                    state: .running,
                    token: token,
                    holder: request.holder,
                    leaseUntil: request.leaseUntil,
                    createdAt: request.now
                )
            record.state = .running
            record.token = token
            record.holder = request.holder
            record.leaseUntil = request.leaseUntil
            record.recoveryPoint = recoveryPoint
            record.outcome = nil
            record.completedAt = nil
            record.expiresAt = request.leaseUntil + request.retention
            if record.fingerprint.bytes.isEmpty { record.fingerprint = request.fingerprint }
            return record
        case .inProgress, .completed, .fingerprintMismatch:
            return nil
        }
    }
}

/// How an operation ends.
public enum Completion: Sendable, Hashable {
    /// Terminal success with the encoded result; replayed to every duplicate.
    case success([UInt8])
    /// Terminal failure with the encoded reason; replayed to every duplicate.
    case failure([UInt8])
    /// A failure worth retrying: the key is released and the next claim acquires it.
    case retryable

    /// The state a record moves to.
    public var state: OperationState {
        switch self {
        case .success: .succeeded
        case .failure: .failed
        case .retryable: .released
        }
    }

    /// The outcome bytes stored with the record.
    public var outcome: [UInt8]? {
        switch self {
        case .success(let bytes), .failure(let bytes): bytes
        case .retryable: nil
        }
    }

    /// The record after this completion, written at `now` with the given retention.
    /// Released records keep their token, so the next holder's token is still larger. Completed
    /// and released records expire `retention` after they ended.
    public func apply(to record: OperationRecord, now: Timestamp, retention: Duration) -> OperationRecord {
        var record = record
        record.state = state
        record.outcome = outcome
        if state.isTerminal {
            record.completedAt = now
        } else {
            record.leaseUntil = now
        }
        record.expiresAt = now + retention
        return record
    }
}

/// A write that only the key's current holder may make.
public enum HolderWrite: Sendable, Hashable {
    /// Save a recovery point and extend the lease to `lease` from the time of the write.
    case checkpoint(recoveryPoint: [UInt8], lease: Duration)
    /// End the operation.
    case complete(Completion)

    /// The record after this write at `now`. Pure, shared by every store.
    public func apply(to record: OperationRecord, now: Timestamp, retention: Duration) -> OperationRecord {
        switch self {
        case .checkpoint(let recoveryPoint, let lease):
            var record = record
            record.recoveryPoint = recoveryPoint
            record.leaseUntil = now + lease
            record.expiresAt = record.leaseUntil + retention
            return record
        case .complete(let completion):
            return completion.apply(to: record, now: now, retention: retention)
        }
    }
}

extension OperationRecord {
    /// Whether the record may be purged at `now`: its expiry has passed — for a completed or
    /// released operation, `retention` after it ended; for an abandoned running one, `retention`
    /// after its lease ended. A running record whose lease is still live never expires.
    public func isExpired(at now: Timestamp) -> Bool {
        guard let expiresAt, expiresAt <= now else { return false }
        return state != .running || leaseUntil <= now
    }
}
