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
extension MemoryRows: StoreRows {}
