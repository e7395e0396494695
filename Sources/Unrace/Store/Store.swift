public import UnraceCore

/// Where operation records and business writes live.
///
/// Every requirement is **one atomic step**: one transaction on a real database, one scheduling
/// point in the simulator. The guards in ``Operations`` are written once against this protocol,
/// so the same guard code runs on SQLite, PostgreSQL and in memory. Races happen *between* steps,
/// which is exactly where the simulator interleaves.
///
/// Stores translate their native errors (unique violations, serialization failures, busy
/// databases) into ``UnraceError`` and retry the step themselves where that is safe.
public protocol Store: Sendable {
    /// The handle a caller's body uses for its own business writes inside a step's transaction.
    associatedtype Transaction: Sendable

    /// Claims `request.key` and, if the claim acquires it, runs `body` and stores the completion
    /// it returns — all in one transaction. If `body` throws, nothing is written.
    ///
    /// - Returns: ``PerformStep/performed(_:)`` with the stored record, or
    ///   ``PerformStep/notAcquired(_:)`` with the decision that kept the caller out.
    func performOnce(
        _ request: ClaimRequest,
        retention: Duration,
        _ body: (Transaction, FencingToken) async throws -> Completion
    ) async throws -> PerformStep

    /// Claims `request.key` for a lease (the first phase of two-phase use).
    func claim(_ request: ClaimRequest) async throws -> ClaimStep

    /// Runs `body` and applies `write` to the record, in one transaction, if and only if `token`
    /// is still the key's current token.
    ///
    /// - Throws: ``UnraceError/Code/fenced`` when the key has a newer holder (or no longer exists);
    ///   the transaction rolls back, so `body`'s writes never commit.
    func write(
        _ write: HolderWrite,
        scope: Scope,
        key: OperationKey,
        token: FencingToken,
        now: Timestamp,
        retention: Duration,
        _ body: (Transaction) async throws -> Void
    ) async throws -> OperationRecord

    /// The record for a key, if there is one.
    func record(scope: Scope, key: OperationKey) async throws -> OperationRecord?

    /// Deletes at most `limit` terminal records whose retention ended before `now`.
    /// - Returns: how many were deleted.
    func purgeExpired(now: Timestamp, limit: Int) async throws -> Int

    /// Runs `body` in a transaction with no operation record: plain business writes.
    func withTransaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T

    // MARK: Inbox

    /// Receives one event in one transaction: decides by the stream's head, applies it with
    /// `handler` (and then any parked successors, in order), parks it, or reports it.
    /// - Throws: ``UnraceError/Code/parkingLimitReached`` when parking would pass
    ///   `parkingLimit`; nothing is written.
    func receive(
        _ event: InboxEvent,
        parkingLimit: Int,
        now: Timestamp,
        _ handler: (Transaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome

    /// Moves a stream's head past its gap (recording `skipped` markers) and drains, in one
    /// transaction. Returns how many sequences were skipped and how many events drained.
    func skipGap(
        stream: String,
        now: Timestamp,
        _ handler: (Transaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int)

    /// Streams whose gap opened at or before `cutoff`, oldest first, at most `limit`.
    func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap]

    /// The last applied sequence of a stream (0 if none).
    func inboxHead(stream: String) async throws -> Int64

    // MARK: Versioned records, counters, quotas, holds

    /// The stored bytes and version of a record.
    func readRecord(collection: String, id: String) async throws -> (value: [UInt8], version: Int64)?

    /// Creates a record at version 1 unless it exists (a unique constraint, not a prior read).
    /// - Returns: `nil` if created, else the existing record's version.
    func createRecord(collection: String, id: String, value: [UInt8], now: Timestamp) async throws -> Int64?

    /// Writes a record if and only if its version is still `expectedVersion` (compare-and-swap).
    /// - Returns: the new version, or `nil` on a conflict (nothing written).
    func writeRecord(collection: String, id: String, value: [UInt8], expectedVersion: Int64, now: Timestamp) async throws -> Int64?

    /// Creates a counter with bounds unless it exists. Returns whether it was created.
    func createCounter(name: String, value: Int64, floor: Int64, ceiling: Int64) async throws -> Bool

    /// Adds `delta` in one conditional statement, only if the result stays within the counter's
    /// floor and ceiling. Returns the new value, or the unchanged current value when refused.
    func adjustCounter(name: String, by delta: Int64) async throws -> CounterStep

    /// Consumes `units` of `limit` in the fixed window starting at `windowStart`, in one
    /// conditional statement. Returns the units used in the window after (granted) or before (denied).
    func consumeQuota(name: String, units: Int64, limit: Int64, windowStart: Timestamp) async throws -> QuotaStep

    /// Creates a resource with `capacity` units unless it exists. Returns whether it was created.
    func createResource(name: String, capacity: Int64) async throws -> Bool

    /// Holds `units` of a resource under `key` until `expiresAt`, first returning expired holds'
    /// units, in one transaction. A repeated key returns the existing hold.
    func hold(resource: String, key: String, units: Int64, now: Timestamp, expiresAt: Timestamp) async throws -> HoldStep

    /// Confirms (`confirm == true`) or releases a live hold, in one transaction.
    func settleHold(key: String, confirm: Bool, now: Timestamp) async throws -> HoldStep

    // MARK: Ledger

    /// Creates accounts that do not exist yet, in one transaction; one result per account.
    func createAccounts(_ accounts: [Account], now: Timestamp) async throws -> [AccountResult]

    /// Applies a batch of transfers in one transaction: locks the accounts it touches (in id
    /// order), runs ``LedgerEngine``, writes the changes. One result per transfer.
    func submitTransfers(_ batch: [Transfer], now: Timestamp) async throws -> [TransferResult]

    /// The accounts with these ids that exist.
    func lookupAccounts(_ ids: [String]) async throws -> [Account]

    /// Sums over all accounts.
    func ledgerTotals() async throws -> LedgerTotals

    // MARK: Lifecycles

    /// Applies `event` to an entity's stored lifecycle state and runs `handler` with the
    /// decision, in one transaction. Only a `moved` decision changes the stored state.
    func transition(
        _ lifecycle: Lifecycle,
        name: String,
        entity: String,
        event: String,
        now: Timestamp,
        _ handler: (Transaction, Lifecycle.Decision) async throws -> Void
    ) async throws -> Lifecycle.Decision
}

/// The answer to ``Store/performOnce(_:retention:_:)``.
public enum PerformStep: Sendable, Hashable {
    /// The caller acquired the key; its body ran and its completion was stored.
    case performed(OperationRecord)
    /// The caller did not acquire the key; nothing ran.
    case notAcquired(ClaimDecision)
}

/// The answer to ``Store/claim(_:)``.
public enum ClaimStep: Sendable, Hashable {
    /// The caller holds the key with the record's token until its lease ends.
    case acquired(OperationRecord)
    /// The caller did not acquire the key.
    case notAcquired(ClaimDecision)
}

/// A write that only the key's current holder may make.
public enum HolderWrite: Sendable, Hashable {
    /// Save a recovery point (and extend the lease to `leaseUntil`).
    case checkpoint(recoveryPoint: [UInt8], leaseUntil: Timestamp)
    /// End the operation.
    case complete(Completion)

    /// The record after this write. Pure, shared by every store.
    public func apply(to record: OperationRecord, now: Timestamp, retention: Duration) -> OperationRecord {
        switch self {
        case .checkpoint(let recoveryPoint, let leaseUntil):
            var record = record
            record.recoveryPoint = recoveryPoint
            record.leaseUntil = leaseUntil
            return record
        case .complete(let completion):
            return completion.apply(to: record, now: now, retention: retention)
        }
    }
}
