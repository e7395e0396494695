import Synchronization
import Unrace
import UnraceSQL

/// A SQL transaction that counts the statements sent through it.
struct CountingTransaction<Inner: SQLTransaction>: SQLTransaction {
    let inner: Inner
    let sent: Counter

    func execute(_ sql: String, _ arguments: [SQLValue]) async throws {
        sent.increment()
        try await inner.execute(sql, arguments)
    }

    func query(_ sql: String, _ arguments: [SQLValue]) async throws -> [SQLRow] {
        sent.increment()
        return try await inner.query(sql, arguments)
    }

    func executeBeforeCommit(_ sql: String, _ arguments: [SQLValue]) async throws {
        sent.increment()
        try await inner.executeBeforeCommit(sql, arguments)
    }
}

/// A SQL store whose steps run Unrace's rows over a ``CountingTransaction``: how many statements a
/// guard's step sends, on a real database.
struct CountingStore<Inner: SQLStore>: Store {
    typealias Transaction = Inner.Transaction
    let inner: Inner
    let sent = Counter()
    /// A wrapper answers as the store it wraps.
    var runsStepsConcurrently: Bool { inner.runsStepsConcurrently }

    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Transaction>) async throws -> T) async throws -> T {
        try await inner.step(step) { context in
            let counted = CountingTransaction(inner: context.transaction, sent: sent)
            let rows = SQLRows(counted, dialect: inner.dialect, time: step.clock.now())
            return try await body(StepContext(transaction: context.transaction, rows: rows, tracer: context.tracer))
        }
    }

    func withTransaction<T: Sendable>(_ body: (Transaction) async throws -> T) async throws -> T {
        try await inner.withTransaction(body)
    }

    var backendName: String { inner.backendName }
}
