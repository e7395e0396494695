import Foundation
@_spi(Testing) public import Unrace
public import UnraceSQLite

/// The ``Store`` simulated actors use: the run's shipping store (``MemoryStore`` or a fresh
/// `SQLiteStore` file), with every step made one scheduling point and subject to the run's faults.
///
/// Before a step runs, the caller may be delayed (latency, a pause), crash, or get a transient
/// `store_unavailable` with nothing written; after it commits, the reply may be lost (the caller
/// sees `store_unavailable` although the step happened). The step itself is the base store's own,
/// atomic, with the guards every store runs.
///
/// The simulated database has its own clock — the run's virtual clock: every step decides on it,
/// whatever clock the calling actor's API was given, as PostgreSQL decides on its own clock. An
/// actor whose clock is skewed therefore cannot move a lease; only its own reads of time are off.
public struct SimulatedStore: Store {
    /// Business writes: a table of values by id, on whichever store backs the run.
    public typealias Transaction = SimulationTransaction

    /// `simulated`: the `store` label of metrics and spans in a simulated run.
    public var backendName: String { "simulated" }

    unowned(unsafe) let world: World
    /// Whether steps are scheduling points with faults (actors' store) or run directly (a
    /// scenario's set-up and its checks, outside the run).
    let scheduled: Bool

    /// Runs `body` as one step of the backing store, after one scheduling point; with faults on,
    /// the store may refuse it (`store_unavailable`) or commit it and lose the reply.
    public func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<SimulationTransaction>) async throws -> T) async throws -> T {
        guard scheduled else { return try await world.backend.step(step, clock: world.clock, tracer: nil, world.disabledGuards, body) }
        try await world.point(0, step.subject.isEmpty ? "store.\(step.name)" : "store.\(step.name) \(step.subject)")
        let faults = world.faults
        if faults.transientPerMille > 0, world.choices.chance(perMille: faults.transientPerMille) {
            world.annotate("✗ unavailable")
            throw UnraceError(.storeUnavailable, "simulated: the store is unavailable")
        }
        let result = try await world.backend.step(
            step,
            clock: world.clock,
            tracer: world.scheduler.trace == nil ? nil : world,
            world.disabledGuards,
            body
        )
        if faults.lostReplyPerMille > 0, world.choices.chance(perMille: faults.lostReplyPerMille) {
            world.annotate("✓ committed, reply lost")
            throw UnraceError(.storeUnavailable, "simulated: the step committed but its reply was lost")
        }
        return result
    }

    /// Runs `body` in a transaction of its own: one step.
    public func withTransaction<T: Sendable>(_ body: (SimulationTransaction) async throws -> T) async throws -> T {
        try await step(StepInfo("transaction", "", clock: world.clock)) { try await body($0.transaction) }
    }
}

extension World: StepTracer {
    /// Notes about a step go to the running actor's trace line.
    public func note(_ text: String) { annotate(text) }
}

/// Which shipping store a run's world is built on.
public enum SimulationStoreKind: String, Sendable, Hashable, CaseIterable, Codable {
    /// ``MemoryStore``: the fastest.
    case memory
    /// `SQLiteStore` on a fresh file per run (on a memory-backed file system where there is one).
    case sqlite
}

/// A run's base store, with the business table scenarios write through.
enum SimulationBackend: Sendable {
    case memory(MemoryStore)
    case sqlite(SQLiteStore, folder: URL)

    static func make(_ kind: SimulationStoreKind) async throws -> SimulationBackend {
        switch kind {
        case .memory:
            return .memory(MemoryStore())
        case .sqlite:
            // Each run gets its own database file; /dev/shm keeps fsync off the disk.
            let base =
                FileManager.default.fileExists(atPath: "/dev/shm")
                ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
            let folder = base.appendingPathComponent("unrace-sim-\(UUID().uuidString.prefix(12))")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let store = try await SQLiteStore(path: folder.appendingPathComponent("run.sqlite").path)
            _ = try await store.withTransaction { tx in
                try await tx.execute(
                    "CREATE TABLE sim_rows (tbl TEXT NOT NULL, id TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (tbl, id)) WITHOUT ROWID"
                )
            }
            return .sqlite(store, folder: folder)
        }
    }

    /// Removes the run's files.
    func close() {
        if case .sqlite(_, let folder) = self { try? FileManager.default.removeItem(at: folder) }
    }

    func step<T: Sendable>(
        _ step: StepInfo,
        clock: SimulationClock,
        tracer: (any StepTracer)?,
        _ disabled: DisabledGuards,
        _ body: (StepContext<SimulationTransaction>) async throws -> T
    ) async throws -> T {
        let info = StepInfo(step.name, step.subject, clock: clock, isReadOnly: step.isReadOnly)
        switch self {
        case .memory(let store):
            return try await store.step(info) { context in
                try await body(
                    StepContext(transaction: .memory(context.transaction), rows: context.rows, tracer: tracer, disabledGuards: disabled)
                )
            }
        case .sqlite(let store, _):
            return try await store.step(info) { context in
                try await body(
                    StepContext(transaction: .sqlite(context.transaction), rows: context.rows, tracer: tracer, disabledGuards: disabled)
                )
            }
        }
    }

    /// Every committed row of a business table, read outside the run.
    func rows(in table: String) async throws -> [String: [UInt8]] {
        switch self {
        case .memory(let store):
            return store.rows(in: table)
        case .sqlite(let store, _):
            return try await store.withTransaction { tx in try await SimulationTransaction.sqlite(tx).rows(in: table) }
        }
    }
}

/// Business writes of a simulated step: tables of byte values by id, on the run's store.
public enum SimulationTransaction: Sendable {
    /// A ``MemoryStore`` step's transaction.
    case memory(MemoryTransaction)
    /// A `SQLiteStore` step's transaction, over the `sim_rows` table.
    case sqlite(SQLiteTransaction)

    /// Stores `value` under `id` in `table`, replacing what was there.
    public func put(_ table: String, id: String, _ value: [UInt8]) async throws {
        switch self {
        case .memory(let tx): tx.put(table, id: id, value)
        case .sqlite(let tx):
            try await tx.execute(
                "INSERT INTO sim_rows (tbl, id, value) VALUES (?, ?, ?) ON CONFLICT (tbl, id) DO UPDATE SET value = excluded.value",
                [.text(table), .text(id), .blob(value)]
            )
        }
    }

    /// The value under `id` in `table`, including this step's own writes.
    public func get(_ table: String, id: String) async throws -> [UInt8]? {
        switch self {
        case .memory(let tx): return tx.get(table, id: id)
        case .sqlite(let tx):
            return try await tx.query("SELECT value FROM sim_rows WHERE tbl = ? AND id = ?", [.text(table), .text(id)]).first?
                .optionalBytes("value")
        }
    }

    /// Every row of `table`, including this step's own writes.
    public func rows(in table: String) async throws -> [String: [UInt8]] {
        switch self {
        case .memory(let tx): return tx.rows(in: table)
        case .sqlite(let tx):
            var rows: [String: [UInt8]] = [:]
            for row in try await tx.query("SELECT id, value FROM sim_rows WHERE tbl = ?", [.text(table)]) {
                rows[try row.string("id")] = row.optionalBytes("value") ?? []
            }
            return rows
        }
    }
}
