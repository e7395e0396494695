public import UnraceCore

/// Proof that the caller holds an operation key: its fencing token and lease.
///
/// Pass it to ``Operations/checkpoint(_:recoveryPoint:_:)``, ``Operations/complete(_:result:_:)``
/// and ``Operations/fail(_:reason:_:)``. The store accepts them only while ``token`` is still the
/// key's current token; a holder whose lease ended and was taken over is fenced.
public struct OperationHandle: Sendable, Hashable {
    /// The scope of the key.
    public let scope: Scope
    /// The key held.
    public let key: OperationKey
    /// The fencing token this holder's writes carry.
    public let token: FencingToken
    /// When the lease ends unless a checkpoint extends it.
    public let leaseUntil: Timestamp
    /// The recovery point the last holder saved, if any: where a takeover resumes.
    public let recoveryPointBytes: [UInt8]?
    /// When the record this holder claimed was first created: with the token, it names the
    /// holder's claim even after the key was purged and claimed anew.
    public let createdAt: Timestamp

    init(record: OperationRecord) {
        self.scope = record.scope
        self.key = record.key
        self.token = record.token
        self.leaseUntil = record.leaseUntil
        self.recoveryPointBytes = record.recoveryPoint
        self.createdAt = record.createdAt
    }

    /// Whether this holder is resuming work an earlier holder started (its token is not the first).
    public var isTakeover: Bool { token != .first }

    /// The last saved recovery point, decoded; `nil` if none was saved.
    public func recoveryPoint<T: Decodable>(as type: T.Type = T.self) throws -> T? {
        guard let bytes = recoveryPointBytes else { return nil }
        return try OutcomeCoding.decode(T.self, from: bytes)
    }

    /// A key for a downstream system that stays the same across retries and takeovers of this
    /// operation (see ``OperationKey/derived(_:scope:)``).
    public func derivedKey(_ label: String) -> String { key.derived(label, scope: scope) }
}

/// A logically completed operation, as stored.
public struct CompletedOperation: Sendable, Hashable {
    /// The stored record.
    public let record: OperationRecord

    /// Whether it ended in a terminal failure.
    public var isFailure: Bool { record.state == .failed }

    /// The stored success value.
    /// - Throws: ``UnraceError/Code/operationFailed`` if the operation failed for good;
    ///   ``UnraceError/Code/outcomeDecodingFailed`` if the value is not a `T`.
    public func value<T: Decodable>(as type: T.Type = T.self) throws -> T {
        try OutcomeCoding.decodeSuccess(T.self, from: record)
    }

    /// The stored failure reason, if the operation failed for good.
    public var failureReason: String? {
        isFailure ? record.outcome.map { String(decoding: $0, as: UTF8.self) } : nil
    }
}

/// The answer to ``Operations/begin(key:scope:fingerprint:)``.
public enum Claim: Sendable, Hashable {
    /// The caller holds the key: do the work, then complete or fail it.
    case acquired(OperationHandle)
    /// Another holder's lease is running.
    case inProgress(holder: String, leaseUntil: Timestamp)
    /// The operation was already logically completed: here is its outcome.
    case completed(CompletedOperation)
    /// The key was used with a different request.
    case fingerprintMismatch
}

/// Where an operation stands, as ``Operations/status(of:scope:)`` reports it.
public enum OperationStatus: Sendable, Hashable {
    /// No record: the operation never ran, or its record was purged after retention.
    case notStarted
    /// A holder claimed it and has not ended it. Its lease runs until `leaseUntil`: a time already
    /// past means the holder is gone (or late), and the next claim takes the key over.
    case inProgress(holder: String, leaseUntil: Timestamp)
    /// A retryable failure released it; the next claim runs it again.
    case released
    /// It was logically completed (succeeded or failed for good).
    case completed(CompletedOperation)

    /// `true` exactly when the operation has been logically completed.
    public var isCompleted: Bool {
        if case .completed = self { return true }
        return false
    }
}

/// Why a holder gives up.
public enum FailureReason: Sendable, Hashable {
    /// A failure that retrying cannot fix (a declined card): stored and replayed to duplicates.
    case terminal(String)
    /// A failure worth retrying (a timeout): the key is released for the next claim.
    case retryable
}
