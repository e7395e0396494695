public import UnraceCore

/// Where Unrace's rows and your business writes live.
///
/// A store does two things: it runs **steps** — one atomic transaction each on a real database,
/// one scheduling point in the simulator — and, inside a step, it reads, locks and writes
/// Unrace's rows through ``StoreRows``. It decides nothing: every guard (claims, fencing,
/// compare-and-swap, counter bounds, quota windows, holds, the ledger, inbox sequencing,
/// lifecycles) is written once in this module and runs unchanged on ``MemoryStore``,
/// `SQLiteStore`, `PostgresStore` and the simulator's store. Races happen *between* steps,
/// which is exactly where the simulator interleaves.
///
/// Stores translate their native errors (unique violations, serialization failures, busy
/// databases) into ``UnraceError`` and retry a step themselves where that is safe.
///
/// ## Implementing a store
///
/// - ``step(_:_:)`` begins a transaction (on SQL: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on
///   PostgreSQL), runs the body with the transaction and rows bound to it, and commits; if the
///   body throws — or the task is cancelled — it rolls back before it returns, and never leaves
///   a writer held.
/// - A step started inside another step's body fails with ``UnraceError/Code/nestedStep`` (see
///   ``StepNesting``): it would deadlock on a single writer, or commit apart from the outer step.
/// - Time: ``StepTime/now()`` is the time the step decides at. Real-time clocks
///   (``WallClock/isRealTime``) are the store's to replace: PostgreSQL reads its own clock in the
///   step; one-machine stores read the caller's clock once the step holds this process's writer.
/// - Savepoints: ``StepSavepoints`` undo a step's latest writes — the caller's business writes
///   included — without ending the step or giving up its locks (`SAVEPOINT` on SQL).
public protocol Store: Sendable {
    /// The handle a caller's body uses for its own business writes inside a step.
    associatedtype Transaction: Sendable

    /// Runs `body` as one atomic step and returns its result.
    ///
    /// - Throws: ``UnraceError/Code/nestedStep`` inside another step's body; store errors; or
    ///   what `body` throws (nothing of the step is written then).
    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Transaction>) async throws -> T) async throws -> T

    /// Runs `body` in a transaction with no Unrace rows: plain business writes.
    /// - Throws: ``UnraceError/Code/nestedStep`` inside a step's body; store errors; what `body` throws.
    func withTransaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T

    /// Unrace's rows inside a transaction this store handed to a body (a step's, or
    /// ``withTransaction(_:)``'s), so that Unrace's writes — an outbox's messages, an ack — join
    /// the caller's transaction and commit with it. `clock` is the caller's, replaced like a
    /// step's. Stores that cannot do this throw ``UnraceError/Code/invalidArgument``.
    func rows(joining transaction: Transaction, clock: any WallClock) async throws -> any StoreRows

    /// A short name of the backend, such as `sqlite`, `postgres` or `memory`: the `store` label
    /// of Unrace's metrics and spans.
    var backendName: String { get }

    /// Whether two of its steps can run at once: `true` on PostgreSQL (also through Fluent),
    /// `false` on SQLite's single writer and ``MemoryStore``. Where they can, a ``Ledger`` may start
    /// its next group while the one before it writes and commits (see
    /// ``Ledger/groupsInFlightMaximum``). Default `false` (a SQL store's
    /// default is its dialect's `hasConcurrentWriters`); a store that wraps another should answer
    /// as the one it wraps.
    var runsStepsConcurrently: Bool { get }
}

extension Store {
    /// The store's type name, for a store that does not name its backend.
    public var backendName: String { "\(Self.self)" }

    /// `false`: steps are taken to run one at a time.
    public var runsStepsConcurrently: Bool { false }

    /// Refuses: this store cannot add Unrace's rows to a transaction it handed out.
    ///
    /// The stores Unrace provides give their rows in a transaction of their own database, and
    /// refuse one of another database or schema (``UnraceError/Code/invalidArgument``): its
    /// writes would land there, such as in another tenant's schema.
    public func rows(joining transaction: Transaction, clock: any WallClock) async throws -> any StoreRows {
        throw UnraceError(.invalidArgument, "this store cannot write Unrace's rows in a transaction it handed out")
    }
}

/// What a step is, for the store that runs it.
public struct StepInfo: Sendable {
    /// The API call, such as `perform` or `adjust`: traces and logs name steps by it.
    public var name: StaticString
    /// What the step is about (a key, a counter), for the simulator's trace. Never logged.
    public var subject: String
    /// The caller's clock. A store replaces a real-time clock with its own (PostgreSQL's).
    public var clock: any WallClock
    /// Whether the step only reads: a store may run it on a reader, without the writer. Its body
    /// must not write: `SQLiteStore` refuses a write there, while `PostgresStore` and
    /// `FluentStore` run a read-only step's statements outside a transaction, where a write would
    /// commit at once whatever the body does next.
    public var isReadOnly: Bool

    /// Describes a step.
    public init(_ name: StaticString, _ subject: String, clock: any WallClock, isReadOnly: Bool = false) {
        self.name = name
        self.subject = subject
        self.clock = clock
        self.isReadOnly = isReadOnly
    }
}

/// What a step's body works with: the caller's transaction, Unrace's rows in the same
/// transaction, and a way to annotate the simulator's trace.
public struct StepContext<Transaction: Sendable> {
    /// The business transaction the caller's own writes go through.
    public let transaction: Transaction
    /// Unrace's rows, read and written in the same transaction.
    public let rows: any StoreRows
    /// Who records notes about the step (the simulator), if anyone.
    public let tracer: (any StepTracer)?
    /// Guards switched off, to show that a checker catches their absence. Empty outside such tests.
    @_spi(Testing) public let disabledGuards: DisabledGuards

    /// A context for a step.
    public init(transaction: Transaction, rows: any StoreRows, tracer: (any StepTracer)? = nil) {
        self.init(transaction: transaction, rows: rows, tracer: tracer, disabledGuards: [])
    }

    /// A context for a step with some guards switched off. For tests of checkers only.
    @_spi(Testing)
    public init(transaction: Transaction, rows: any StoreRows, tracer: (any StepTracer)?, disabledGuards: DisabledGuards) {
        self.transaction = transaction
        self.rows = rows
        self.tracer = tracer
        self.disabledGuards = disabledGuards
    }

    /// Adds `text` to the trace of the step, when something traces it.
    public func note(_ text: @autoclosure () -> String) {
        tracer?.note(text())
    }

    /// The same context, traced by `tracer`.
    public func traced(by tracer: any StepTracer) -> StepContext {
        StepContext(transaction: transaction, rows: rows, tracer: tracer, disabledGuards: disabledGuards)
    }
}

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

/// Receives notes about what a step decided (the simulator writes them into its trace).
public protocol StepTracer: Sendable {
    /// Records a note about the running step.
    func note(_ text: String)
}

extension Store {
    /// The stored record of an operation key, if any, read in a read-only step (on the system
    /// clock: a read decides nothing).
    public func record(scope: Scope, key: OperationKey) async throws -> OperationRecord? {
        try await step(StepInfo("record", key.rawValue, clock: SystemWallClock(), isReadOnly: true)) { context in
            try await context.rows.operation(scope: scope, key: key)
        }
    }
}

extension UnraceError {
    /// The refusal of a transaction of another database, by ``Store/rows(joining:clock:)``.
    package static var foreignTransaction: UnraceError {
        UnraceError(
            .invalidArgument,
            "this transaction is on another database or schema than this store: its writes would land there, in another tenant's rows"
        )
    }
}

/// A store that can tell which rows it reads and writes: two stores with the same
/// ``rowsIdentity`` share them (two instances on one SQLite file; two PostgreSQL stores on one
/// location). A queue's deliveries carry it, so that another store's queue refuses them.
package protocol RowsIdentifying {
    /// Which rows: equal for stores that share them.
    var rowsIdentity: String { get }
}
