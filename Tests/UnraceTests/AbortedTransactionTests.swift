import Testing
import Unrace
import UnraceFluent
import UnraceSQL

/// A body that catches a failed statement and goes on: SQLite keeps the failure to that
/// statement; PostgreSQL aborts the whole transaction and answers its `COMMIT` with `ROLLBACK`.
/// The step must then fail (`store_failure`), never report a success that committed nothing. A
/// savepoint around the statement that may fail keeps the rest on every store.
@Suite("A failed statement a body caught", .timeLimit(.minutes(2)))
struct AbortedTransactionTests {
    @Test(
        "caught without a savepoint: SQLite commits the rest; PostgreSQL fails the step and commits nothing",
        arguments: storeBackends.filter { $0 != .memory }
    )
    func caughtFailure(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in
            if let store = store as? any SQLStore {
                try await Self.caughtFailure(store, abortsOnError: store.dialect.clockExpression != nil)
            } else if let store = store as? FluentStore {
                try await Self.caughtFailure(store, abortsOnError: backend == .fluentPostgres)
            }
        }
    }

    static func caughtFailure<S: Store>(_ store: S, abortsOnError: Bool) async throws where S.Transaction: SQLTransaction {
        let table = uniqueName("aborted")
        try await store.withTransaction { tx in try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY)") }
        let queue = try MessageQueue(store: store, name: uniqueName("q"))
        let outcome: UnraceError?
        do {
            try await store.withTransaction { tx in
                try await queue.enqueue([OutgoingMessage(id: "m1", payload: [1])], in: tx)
                try await tx.execute("INSERT INTO \(table) (id) VALUES ('a')")
                _ = try? await tx.execute("INSERT INTO \(table) (id) VALUES ('a')")
            }
            outcome = nil
        } catch let error as UnraceError {
            outcome = error
        }
        let (rows, messages) = try await (count(store, table), queue.depth().ready)
        if abortsOnError {
            #expect(outcome?.code == .storeFailure, "\(String(describing: outcome))")
            #expect(rows == 0 && messages == 0, "nothing committed")
        } else {
            #expect(outcome == nil)
            #expect(rows == 1 && messages == 1)
        }
        // With a savepoint around the statement that may fail, the rest commits on every store.
        try await store.withTransaction { tx in
            try await tx.execute("INSERT INTO \(table) (id) VALUES ('b')")
            try await tx.savepoint("maybe")
            do {
                try await tx.execute("INSERT INTO \(table) (id) VALUES ('b')")
            } catch {
                try await tx.rollback(toSavepoint: "maybe")
            }
        }
        #expect(try await count(store, table) == rows + 1)
        // A savepoint's name is written into its statement: anything but a plain name is refused
        // before anything is sent; a plain one is compared without regard to case, as SQL does.
        try await store.withTransaction { tx in
            for bad in ["", "1a", "a b", "x; DROP TABLE \(table)", "a\u{0}b", "caf\u{E9}", String(repeating: "s", count: 64)] {
                let error = await #expect(throws: UnraceError.self, "\(bad)") { try await tx.savepoint(bad) }
                #expect(error?.code == .invalidArgument)
            }
            try await tx.savepoint("Mixed_Case")
            try await tx.execute("INSERT INTO \(table) (id) VALUES ('c')")
            try await tx.rollback(toSavepoint: "mixed_case")
        }
        #expect(try await count(store, table) == rows + 1, "the insert after the savepoint rolled back; the table is still there")
    }

    static func count<S: Store>(_ store: S, _ table: String) async throws -> Int where S.Transaction: SQLTransaction {
        try await store.withTransaction { tx in Int(try await tx.query("SELECT COUNT(*) AS n FROM \(table)")[0].int64("n")) }
    }
}
