import Testing
import Unrace
import UnraceFluent
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// A body that catches a failed statement and goes on: SQLite keeps the failure to that
/// statement; PostgreSQL aborts the whole transaction and answers its `COMMIT` with `ROLLBACK`.
/// The step must then fail (`store_failure`), never report a success that committed nothing. A
/// savepoint around the statement that may fail keeps the rest on every store.
@Suite("A failed statement a body caught", .timeLimit(.minutes(10)))
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

    @Test(
        "SQLite: a statement whose conflict resolution is ROLLBACK ends the step; what the body sends after it never commits, on its own or with the claim, and the key stays free"
    )
    func rollbackResolution() async throws {
        try await withStore(.sqlite) { store, _ in try await Self.rollbackResolution(store) }
    }

    static func rollbackResolution<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("effects")
        let unique = uniqueName("unique")
        try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(unique) (id TEXT PRIMARY KEY ON CONFLICT ROLLBACK)")
            try await tx.execute("CREATE TABLE \(table) (id TEXT)")
            try await tx.execute("INSERT INTO \(unique) (id) VALUES ('x')")
        }
        let operations = try Operations(store: store)
        let failed = await QueueTests.code {
            _ = try await operations.perform(key: "k") { tx in
                try await tx.execute("INSERT INTO \(table) (id) VALUES ('before')")
                do { try await tx.execute("INSERT INTO \(unique) (id) VALUES ('x')") } catch {}  // rolls everything back
                try await tx.execute("INSERT INTO \(table) (id) VALUES ('after')")
                return 1
            }
        }
        #expect(failed == "store_failure")
        #expect(try await countRows(store, table) == 0, "nothing of the step, before or after, committed")
        let again = try await operations.perform(key: "k") { _ in 2 }
        #expect(again.value == 2 && !again.isReplay, "no success was recorded for the key")
    }

    @Test(
        "SQLite: a BEGIN that found the file busy leaves the step unbegun; the body's retried statements run inside a transaction and roll back with it"
    )
    func busyBegin() async throws {
        try await withStore(.sqlite) { first, path in
            let first = try #require(first as? SQLiteStore)
            var configuration = SQLiteStore.Configuration()
            configuration.busyTimeout = .milliseconds(100)
            let second = try await SQLiteStore(path: path, configuration: configuration)
            let table = uniqueName("t")
            try await first.withTransaction { tx in try await tx.execute("CREATE TABLE \(table) (id TEXT)") }
            let holding = Latch()
            let release = Latch()
            let holder = Task {
                try await first.withTransaction { tx in
                    try await tx.execute("INSERT INTO \(table) (id) VALUES ('a')")
                    holding.open()
                    await release.wait()
                }
            }
            await holding.wait()
            struct Abandon: Error {}
            await #expect(throws: Abandon.self) {
                try await second.withTransaction { tx in
                    do {
                        try await tx.execute("INSERT INTO \(table) (id) VALUES ('b1')")
                        Issue.record("the first write began while another store held the file")
                    } catch let error as UnraceError where error.code == .storeUnavailable {
                        release.open()
                        try await holder.value
                        try await tx.execute("INSERT INTO \(table) (id) VALUES ('b1')")
                    }
                    try await tx.execute("INSERT INTO \(table) (id) VALUES ('b2')")
                    throw Abandon()
                }
            }
            release.open()
            _ = try? await holder.value
            let ids = try await first.withTransaction { tx in try await tx.query("SELECT id FROM \(table) ORDER BY id") }
            #expect(try ids.map { try $0.string("id") } == ["a"], "b1 and b2 rolled back with the abandoned step")
        }
    }

    @Test(
        "on PostgreSQL a step whose body's caught error made Unrace's prepared statement fail to prepare fails alone: the next steps on the pool's one connection succeed",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func failedPreparationDoesNotStick() async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: location, maximumConnections: 1) { store in
                let table = uniqueName("prep")
                try await store.withTransaction { tx in
                    try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY)")
                    try await tx.execute("INSERT INTO \(table) (id) VALUES ('x')")
                }
                let operations = try Operations(store: store)
                // The body catches a failed insert: the transaction is aborted, and the outcome's
                // prepared statement, first used on this connection here, fails to prepare.
                let failed = await QueueTests.code {
                    _ = try await operations.perform(key: uniqueName("a")) { tx in
                        _ = try? await tx.execute("INSERT INTO \(table) (id) VALUES ('x')")
                        return 1
                    }
                }
                #expect(failed == "store_failure")
                for n in 1...3 {
                    let key = uniqueName("b")
                    #expect(try await operations.perform(key: key) { _ in n }.value == n)
                    #expect(try await operations.perform(key: key) { _ in 0 }.value == n, "replayed")
                }
            }
        }
    }
}
