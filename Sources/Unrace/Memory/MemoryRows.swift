import UnraceCore

/// ``StoreRows`` over a ``MemoryTransaction``: dictionaries, and a plain read is a lock because
/// memory steps run one at a time. Each guard's rows are in a file of their own
/// (`MemoryRows+Operations.swift`, …).
struct MemoryRows: Sendable {
    let tx: MemoryTransaction
    let time: Timestamp

    func now() async throws -> Timestamp { try time.checkedReading() }

    func read<T>(_ body: (inout MemoryStore.State) throws -> T) rethrows -> T {
        try tx.working.withLock { try body(&$0) }
    }

    static func join(_ a: String, _ b: String) -> String { "\(a)\u{0}\(b)" }
}

/// Every guard's rows, each implemented in its own file.
extension MemoryRows: StoreRows {
    /// A copy of the step's working state (copy-on-write: nothing is copied until a write).
    func savepoint() async throws -> StepSavepoint {
        StepSavepoint(tx.working.withLock { $0 })
    }

    /// Puts the copy back.
    func rollback(to savepoint: StepSavepoint) async throws {
        guard let state = savepoint.mark as? MemoryStore.State else {
            throw UnraceError(.invalidArgument, "a savepoint of another store")
        }
        tx.working.withLock { $0 = state }
    }
}
