import Synchronization
import UnraceCore

/// The in-memory reference ``Store``: no I/O, the same guards as SQLite and PostgreSQL.
///
/// Steps run one at a time (like SQLite's single writer); a step's writes go to a copy of the
/// state and become visible only if the step commits. Read-only steps read the committed state
/// without waiting for the writer. Use it in unit tests of your own handlers; the simulator
/// builds on it.
public final class MemoryStore: Store {
    /// The handle a step's body writes through.
    public typealias Transaction = MemoryTransaction

    /// `memory`.
    public var backendName: String { "memory" }
    /// Which memory store this is, for ``rowsIdentity``.
    let instance = MemoryStore.instances.add(1, ordering: .relaxed).newValue

    /// Everything the store holds. Composite keys join validated names (which never contain NUL)
    /// with a NUL.
    struct State {
        var operations: [RecordID: OperationRecord] = [:]
        var tables: [String: [String: [UInt8]]] = [:]
        var streams: [String: StreamHead] = [:]
        var events: [String: StoredEvent] = [:]
        var positions: [String: String] = [:]  // "stream\u{0}sequence" -> event id
        var lifecycles: [String: String] = [:]  // "lifecycle\u{0}entity" -> state
        var records: [String: StoredRecord] = [:]  // "collection\u{0}id"
        var counters: [String: CounterState] = [:]
        var quotas: [String: QuotaState] = [:]
        var resources: [String: ResourceState] = [:]
        var holds: [String: Hold] = [:]
        var accounts: [String: Account] = [:]
        var transfers: [String: StoredTransfer] = [:]
        var pendingTransfers: Set<String> = []
        var failedTransfers: [String: String] = [:]
        var queueMessages: [String: QueueMessage] = [:]  // "queue\u{0}id"
        var queueSequences: [String: Int64] = [:]  // "queue\u{0}key"
        var queuePosition: Int64 = 0
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

    /// Creates an empty store with some guards switched off. For tests of the checkers only.
    @_spi(Testing)
    public init(disabling guards: DisabledGuards) { disabledGuards = guards }

    /// Runs `body` as one step: on a copy of the state, committed if `body` returns. A step
    /// decides at `step.clock`'s time, read once the step holds the writer.
    public func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<MemoryTransaction>) async throws -> T) async throws -> T {
        try StepNesting.check()
        if step.isReadOnly {
            let tx = MemoryTransaction(snapshot: state.withLock { $0 }, owner: ObjectIdentifier(self))
            defer { _ = tx.end() }
            return try await run(tx, now: step.clock.now(), body)
        }
        return try await writer.withLock {
            let tx = MemoryTransaction(snapshot: state.withLock { $0 }, owner: ObjectIdentifier(self))
            defer { _ = tx.end() }  // a step that throws ends its transaction too
            let result = try await run(tx, now: step.clock.now(), body)
            try Task.checkCancellation()  // a cancelled caller commits nothing
            let committed = tx.end()
            state.withLock { $0 = committed }
            return result
        }
    }

    private func run<T>(
        _ tx: MemoryTransaction,
        now: Timestamp,
        _ body: (StepContext<MemoryTransaction>) async throws -> T
    ) async throws -> T {
        let context = StepContext(transaction: tx, rows: MemoryRows(tx: tx, time: now), tracer: nil, disabledGuards: disabledGuards)
        return try await StepNesting.inside { try await body(context) }
    }

    /// Unrace's rows in a transaction this store handed out, at `clock`'s time now.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a transaction another store handed out.
    public func rows(joining transaction: MemoryTransaction, clock: any WallClock) async throws -> any StoreRows {
        guard transaction.owner == ObjectIdentifier(self) else { throw UnraceError.foreignTransaction }
        return MemoryRows(tx: transaction, time: clock.now())
    }

    /// Runs `body` in a transaction with no Unrace rows.
    public func withTransaction<T: Sendable>(_ body: (MemoryTransaction) async throws -> T) async throws -> T {
        try await step(StepInfo("transaction", "", clock: SystemWallClock())) { try await body($0.transaction) }
    }

    /// The committed rows of a business table, for assertions.
    public func rows(in table: String) -> [String: [UInt8]] {
        state.withLock { $0.tables[table] ?? [:] }
    }
}

/// Business writes inside a ``MemoryStore`` step: a set of tables of byte values by id.
///
/// Writes are private to the step until it commits; a step that throws leaves nothing behind.
/// The step works on its own copy of the committed state — a copy-on-write copy, so only the
/// tables it writes are copied — and committing makes that copy the store's state. A transaction
/// used after its step ended (it escaped the body) reads an empty store, and its writes are
/// discarded.
public final class MemoryTransaction: Sendable {
    /// This step's copy of the state.
    let working: Mutex<MemoryStore.State>

    /// The store that handed it out.
    let owner: ObjectIdentifier

    init(snapshot: MemoryStore.State, owner: ObjectIdentifier) {
        self.working = Mutex(snapshot)
        self.owner = owner
    }

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

    /// Every row of `table`, including this step's own writes.
    public func rows(in table: String) -> [String: [UInt8]] {
        working.withLock { $0.tables[table] ?? [:] }
    }

    /// Ends the transaction with its step: returns its state (what a committing step makes the
    /// store's) and leaves it empty, so a transaction that escaped its step reads an empty store
    /// and its writes are discarded, however the step ended; no table is retained twice on the
    /// way to the store.
    func end() -> MemoryStore.State {
        working.withLock { state in
            var committed = MemoryStore.State()
            swap(&committed, &state)
            return committed
        }
    }
}

extension MemoryStore: RowsIdentifying {
    /// This instance, numbered in the process (an address could be reused once it is freed):
    /// memory stores share nothing.
    package var rowsIdentity: String { "memory \(instance)" }

    static let instances = Atomic<UInt64>(0)
}
