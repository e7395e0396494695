public import UnraceCore
import Synchronization

/// The in-memory reference ``Store``: the same semantics as SQLite and PostgreSQL, no I/O.
///
/// Steps run one at a time (like SQLite's single writer); a step's business writes go to a
/// ``MemoryTransaction`` and become visible only if the step commits. Use it in unit tests of
/// your own handlers; the simulator builds on it.
public final class MemoryStore: Store {
    /// The handle a step's body writes through.
    public typealias Transaction = MemoryTransaction

    struct State {
        var records: [RecordID: OperationRecord] = [:]
        var tables: [String: [String: [UInt8]]] = [:]
        var streams: [String: StreamHead] = [:]
        var events: [String: StoredEvent] = [:]
        var positions: [String: String] = [:]  // "stream\u{0}sequence" -> event id
        var lifecycles: [String: String] = [:]  // "lifecycle\u{0}entity" -> state
        var versioned: [String: (value: [UInt8], version: Int64)] = [:]  // "collection\u{0}id"
        var counters: [String: (value: Int64, floor: Int64, ceiling: Int64)] = [:]
        var quotas: [String: (windowStart: Timestamp, used: Int64)] = [:]
        var resources: [String: (capacity: Int64, held: Int64, confirmed: Int64)] = [:]
        var holds: [String: Hold] = [:]
        var accounts: [String: Account] = [:]
        var transfers: [String: StoredTransfer] = [:]
        var failedTransfers: [String: String] = [:]
    }

    struct StoredEvent {
        var event: InboxEvent
        var status: InboxEventStatus
        var reason: String?
    }

    struct RecordID: Hashable {
        var scope: Scope
        var key: OperationKey
    }

    private let state = Mutex(State())
    private let writer = AsyncLock()
    let disabledGuards: DisabledGuards

    /// Creates an empty store.
    public init() { disabledGuards = [] }

    /// Guards a test can switch off to show that the simulator's checkers catch their absence.
    /// Never use this outside such a test.
    @_spi(Testing)
    public struct DisabledGuards: OptionSet, Sendable, Hashable {
        /// The raw bits.
        public let rawValue: Int
        /// Creates a set from raw bits.
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Holder writes skip the fencing-token comparison (a zombie's write lands).
        public static let fencing = DisabledGuards(rawValue: 1 << 0)
        /// Versioned writes skip the version comparison (a stale read's write lands).
        public static let versionCheck = DisabledGuards(rawValue: 1 << 1)
    }

    /// Creates an empty store with some guards switched off. For tests of the checkers only.
    @_spi(Testing)
    public init(disabling guards: DisabledGuards) { disabledGuards = guards }

    /// Claims the key and, if acquired, runs `body` and stores its completion, in one transaction. See ``Store/performOnce(_:retention:_:)``.
    public func performOnce(
        _ request: ClaimRequest,
        retention: Duration,
        _ body: (MemoryTransaction, FencingToken) async throws -> Completion
    ) async throws -> PerformStep {
        try await transaction { tx in
            let id = RecordID(scope: request.scope, key: request.key)
            let existing = tx[record: id]
            let decision = ClaimDecision.decide(existing: existing, request: request)
            guard let acquired = decision.acquiredRecord(for: request, existing: existing) else {
                return .notAcquired(decision)
            }
            let completion = try await body(tx, acquired.token)
            let record = completion.apply(to: acquired, now: request.now, retention: retention)
            tx[record: id] = record
            return .performed(record)
        }
    }

    /// Claims the key for a lease, in one transaction. See ``Store/claim(_:)``.
    public func claim(_ request: ClaimRequest) async throws -> ClaimStep {
        try await transaction { tx in
            let id = RecordID(scope: request.scope, key: request.key)
            let existing = tx[record: id]
            let decision = ClaimDecision.decide(existing: existing, request: request)
            guard let acquired = decision.acquiredRecord(for: request, existing: existing) else {
                return .notAcquired(decision)
            }
            tx[record: id] = acquired
            return .acquired(acquired)
        }
    }

    /// Runs `body` and applies `write` if `token` is current, in one transaction; throws `fenced` otherwise. See ``Store/write(_:scope:key:token:now:retention:_:)``.
    public func write(
        _ write: HolderWrite,
        scope: Scope,
        key: OperationKey,
        token: FencingToken,
        now: Timestamp,
        retention: Duration,
        _ body: (MemoryTransaction) async throws -> Void
    ) async throws -> OperationRecord {
        try await transaction { tx in
            let id = RecordID(scope: scope, key: key)
            let current = tx[record: id]
            guard disabledGuards.contains(.fencing) || Fence.admits(current, token: token), let current else {
                throw Fence.error(token: token, current: current)
            }
            try await body(tx)
            let record = write.apply(to: current, now: now, retention: retention)
            tx[record: id] = record
            return record
        }
    }

    /// The stored record of a key, if any.
    public func record(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        state.withLock { $0.records[RecordID(scope: scope, key: key)] }
    }

    /// Deletes at most `limit` records whose retention ended before `now`.
    public func purgeExpired(now: Timestamp, limit: Int) async throws -> Int {
        try await transaction { tx in
            let expired = tx.allRecords
                .filter { ($0.expiresAt.map { $0 <= now }) ?? false }
                .sorted { $0.expiresAt! < $1.expiresAt! }
                .prefix(limit)
            for record in expired { tx[record: RecordID(scope: record.scope, key: record.key)] = nil }
            return expired.count
        }
    }

    /// Runs `body` in a transaction with no operation record.
    public func withTransaction<T: Sendable>(_ body: (MemoryTransaction) async throws -> T) async throws -> T {
        try await transaction(body)
    }

    /// The committed rows of a table, for assertions.
    public func rows(in table: String) -> [String: [UInt8]] {
        state.withLock { $0.tables[table] ?? [:] }
    }

    private func transaction<T>(_ body: (MemoryTransaction) async throws -> T) async throws -> T {
        try await writer.withLock {
            let tx = MemoryTransaction(snapshot: state.withLock { $0 })
            let result = try await body(tx)
            let committed = tx.finish()
            state.withLock { $0 = committed }
            return result
        }
    }
}

/// Business writes inside a ``MemoryStore`` step: a set of tables of byte values by id.
///
/// Writes are private to the step until it commits; a step that throws leaves nothing behind.
/// The step works on its own copy of the committed state — a copy-on-write copy, so only the
/// tables it writes are copied — and committing makes that copy the store's state.
public final class MemoryTransaction: Sendable {
    /// This step's copy of the state.
    let working: Mutex<MemoryStore.State>

    init(snapshot: MemoryStore.State) { self.working = Mutex(snapshot) }

    subscript(record id: MemoryStore.RecordID) -> OperationRecord? {
        get { working.withLock { $0.records[id] } }
        set { working.withLock { $0.records[id] = newValue } }
    }

    /// Every record as this step sees it (used only by purging).
    var allRecords: [OperationRecord] { working.withLock { Array($0.records.values) } }

    /// Stores `value` under `id` in `table`, replacing what was there.
    public func put(_ table: String, id: String, _ value: [UInt8]) {
        working.withLock { $0.tables[table, default: [:]][id] = value }
    }

    /// Inserts `value` under `id` unless the id exists (a unique constraint).
    /// - Returns: `false` if the id already existed.
    @discardableResult
    public func insert(_ table: String, id: String, _ value: [UInt8]) -> Bool {
        working.withLock { state in
            if state.tables[table]?[id] != nil { return false }
            state.tables[table, default: [:]][id] = value
            return true
        }
    }

    /// The value under `id` in `table`, including this step's own writes.
    public func get(_ table: String, id: String) -> [UInt8]? {
        working.withLock { $0.tables[table]?[id] }
    }

    /// Removes `id` from `table`.
    public func delete(_ table: String, id: String) {
        working.withLock { _ = $0.tables[table]?.removeValue(forKey: id) }
    }

    /// How many rows `table` has, including this step's own writes.
    public func count(_ table: String) -> Int {
        working.withLock { $0.tables[table]?.count ?? 0 }
    }

    /// The committed state: this step's copy.
    func finish() -> MemoryStore.State {
        working.withLock { $0 }
    }
}
