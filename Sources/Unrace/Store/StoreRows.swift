public import UnraceCore

/// Unrace's rows inside one step: how a store reads, locks and writes them — and nothing else.
///
/// Every decision is made by the caller (Unrace's guards) from what these methods return; a store
/// only moves rows. "Lock" means: until the step ends, no other step may change the row (or, for
/// an absent row where the method says so, create it). On a store whose steps run one at a time
/// (SQLite's single writer, ``MemoryStore``) a plain read is a lock.
///
/// Writes (`save…`, `insert…`) may be deferred to the commit: nothing in a step reads back a row
/// it wrote, except where a method says otherwise.
public protocol StoreRows: Sendable {
    /// The time the step decides at: the caller's clock read once the step began, or the
    /// database's own clock (PostgreSQL, for real-time clocks), read in the step.
    func now() async throws -> Timestamp

    // MARK: Operations

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

    // MARK: Versioned records

    /// A record, locked when `lock` is set.
    func record(collection: String, id: String, lock: Bool) async throws -> StoredRecord?
    /// Writes a record: inserts it when `isNew`, else replaces it.
    func saveRecord(_ record: StoredRecord, isNew: Bool) async throws

    // MARK: Counters and quotas

    /// A counter, locked when `lock` is set.
    func counter(name: String, lock: Bool) async throws -> CounterState?
    /// Writes a counter: inserts it when `isNew`, else replaces its value.
    func saveCounter(_ counter: CounterState, isNew: Bool) async throws
    /// A quota, locked when `lock` is set.
    func quota(name: String, lock: Bool) async throws -> QuotaState?
    /// Writes a quota: inserts it when `isNew`, else replaces its window and use.
    func saveQuota(_ quota: QuotaState, isNew: Bool) async throws

    // MARK: Holds

    /// A resource, locked when `lock` is set.
    func resource(name: String, lock: Bool) async throws -> ResourceState?
    /// Writes a resource: inserts it when `isNew`, else replaces its held and confirmed units.
    func saveResource(_ resource: ResourceState, isNew: Bool) async throws
    /// A hold by key (unique across resources), locked when `lock` is set.
    func hold(key: String, lock: Bool) async throws -> Hold?
    /// The holds of `resource` that are still `held` with an expiry at or before `now`, locked.
    func expiredHolds(resource: String, at now: Timestamp) async throws -> [Hold]
    /// Names of resources that have `held` holds expired at or before `now`, in byte order, at
    /// most `limit`; not locked (lock each resource before its holds).
    func resourcesWithExpiredHolds(at now: Timestamp, limit: Int) async throws -> [String]
    /// Writes a hold: inserts it when `isNew`, else replaces its state.
    func saveHold(_ hold: Hold, isNew: Bool) async throws

    // MARK: Ledger

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
    /// Writes the state of existing transfers.
    func saveTransferStates(_ transfers: [StoredTransfer]) async throws
    /// Remembers ids whose first attempt failed, with the result code.
    func insertTransferFailures(_ failures: [(id: String, code: String)], now: Timestamp) async throws
    /// Sums over all accounts, without overflow.
    func ledgerTotals() async throws -> LedgerTotals

    // MARK: Inbox

    /// Locks a stream's row (creating it at head 0 if absent), and reads where the event id
    /// `eventID` was stored, if anywhere. A store may read the event id in the same statement;
    /// it then reads it as of the statement's start, which is enough: a duplicate that commits
    /// meanwhile on the same stream is found by ``isPositionTaken(stream:sequence:)``, and one on
    /// another stream by the event id's uniqueness.
    func lockStream(_ stream: String, eventID: String) async throws -> (head: StreamHead, stored: InboxPosition?)
    /// Whether an event is stored at this position of the stream.
    func isPositionTaken(stream: String, sequence: Int64) async throws -> Bool
    /// Stores an event.
    func insertInboxEvent(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws
    /// Stores an applied (or rejected) event and the stream's new head: the last writes of the
    /// common in-order step, which a store may send as one statement.
    func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws
    /// Changes a stored event's status.
    func setInboxEventStatus(_ event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws
    /// The parked event at exactly `sequence` of a stream, if any.
    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent?
    /// The lowest parked sequence of a stream, if any.
    func lowestParkedSequence(stream: String) async throws -> Int64?
    /// Writes a stream's head.
    func saveStream(_ head: StreamHead) async throws
    /// A stream's head, without locking (0 if absent).
    func streamHead(_ stream: String) async throws -> Int64
    /// Streams with parked events whose gap opened at or before `cutoff`, oldest first.
    func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap]

    // MARK: Queues

    /// The stored messages of `queue` among `ids`, by id; locked when `lock` is set.
    func queueMessages(queue: String, ids: [String], lock: Bool) async throws -> [String: QueueMessage]
    /// Inserts a new message (the store assigns its ``UnraceCore/QueueMessage/position``). A concurrent step
    /// inserting the same id makes one of them fail (PostgreSQL retries it, and it finds the row).
    func insertQueueMessage(_ message: QueueMessage) async throws
    /// Moves an ordering key's counter on by one (creating it at 1) and returns the new value.
    func nextQueueSequence(queue: String, key: String) async throws -> Int64
    /// Up to `limit` messages of `queue` that are `ready` or `leased` with ``UnraceCore/QueueMessage/visibleAt``
    /// at or before `now`, by visibility then position, locked — skipping rows another step holds
    /// locked (PostgreSQL's `SKIP LOCKED`), so concurrent workers take different messages.
    func leasableQueueMessages(queue: String, at now: Timestamp, limit: Int) async throws -> [QueueMessage]
    /// Writes an existing message's state, attempts, attempt limit (a redrive raises it),
    /// visibility, worker, error and completion.
    func saveQueueMessage(_ message: QueueMessage) async throws
    /// Messages of `queue` in `state`, by completion then position; only those completed at or
    /// before `completedBefore`, when given. Not locked unless the step's store locks every read.
    func queueMessages(queue: String, state: QueueMessageState, completedBefore: Timestamp?, limit: Int) async throws -> [QueueMessage]
    /// Deletes acked messages of `queue` by position (a message enqueued again under a purged id
    /// has another position, so a purge that read the old one cannot delete it).
    func deleteCompletedQueueMessages(queue: String, positions: [Int64]) async throws
    /// How many messages of `queue` are in each state.
    func queueDepth(queue: String) async throws -> QueueDepth

    // MARK: Lifecycles

    /// An entity's lifecycle state, `nil` for an entity never seen. With `lock`, the state is
    /// locked — its row, or, when absent, the entity itself, so a concurrent first event waits.
    func lifecycleState(lifecycle: String, entity: String, lock: Bool) async throws -> String?
    /// Writes an entity's lifecycle state.
    func saveLifecycleState(lifecycle: String, entity: String, state: String, isNew: Bool, now: Timestamp) async throws
}

/// What a claim finds when it locks a key.
public enum OperationLock: Sendable, Hashable {
    /// The key has a record: decide on it.
    case existing(OperationRecord)
    /// The key has no record, and no concurrent step can give it one until this step ends. The
    /// claim's record is written by ``StoreRows/saveOperation(_:isNew:)`` with `isNew`.
    case absent
    /// The key had no record, and the store has already written the fresh claim's record
    /// (``ClaimDecision/insert`` at ``StoreRows/now()``) to hold the key: a store with concurrent
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
        ClaimRequest(scope: scope, key: key, fingerprint: fingerprint, holder: holder, now: now, leaseUntil: now + lease, retention: retention)
    }
}

/// Where an inbox event id was stored.
public struct InboxPosition: Sendable, Hashable {
    /// The event's stream.
    public var stream: String
    /// The event's sequence.
    public var sequence: Int64

    /// A position.
    public init(stream: String, sequence: Int64) {
        self.stream = stream
        self.sequence = sequence
    }
}
