import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// A step is all or nothing whatever happens to its caller: a cancelled caller commits nothing and
/// leaves no writer held, and a step started inside another step's body is refused at once.
@Suite("Steps: cancellation and nesting")
struct StepTests {
    @Test("a cancelled perform rolls back and releases the writer (SQLite: another store on the file and the same store write at once)")
    func cancellationReleasesTheWriter() async throws {
        try await withStore(.sqlite) { store, path in try await Self.cancellationReleasesTheWriter(store, path: path) }
    }

    static func cancellationReleasesTheWriter<S: SQLStore>(_ store: S, path: String) async throws {
        do {
            let table = uniqueName("effects")
            try await createEffectsTable(store, table)
            let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
            let entered = Latch()
            let task = Task {
                try await operations.perform(key: "slow") { tx in
                    try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('slow', 'w', 0)")
                    entered.open()
                    try await Task.sleep(for: .seconds(3_600))  // suspended until cancelled
                    return 1
                }
            }
            await entered.wait()
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            var configuration = SQLiteStore.Configuration()
            configuration.busyTimeout = .milliseconds(200)  // a writer left open would fail this at once
            let other = try await SQLiteStore(path: path, configuration: configuration)
            _ = try await other.withTransaction { tx in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('other', 'w', 0)")
            }
            #expect(try await operations.perform(key: "slow") { _ in 2 }.value == 2, "the key stayed free")
            #expect(try await countRows(store, table, id: "slow") == 0, "the cancelled body's write rolled back")
        }
    }

    @Test(
        "a cancelled perform on PostgreSQL rolls back and leaves the key free",
        .enabled(if: TestPostgres.required, "needs PostgreSQL")
    )
    func cancellationOnPostgres() async throws {
        try await withStore(.postgres) { store, _ in try await Self.cancellationOnPostgres(store) }
    }

    static func cancellationOnPostgres<S: SQLStore>(_ store: S) async throws {
        do {
            let table = uniqueName("effects")
            try await createEffectsTable(store, table)
            let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
            let scope = try Scope(uniqueName("cancel"))
            let entered = Latch()
            let task = Task {
                try await operations.perform(key: "slow", scope: scope) { tx in
                    try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('slow', 'w', 0)")
                    entered.open()
                    try await Task.sleep(for: .seconds(3_600))
                    return 1
                }
            }
            await entered.wait()
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await operations.perform(key: "slow", scope: scope, whenInProgress: .failFast) { _ in 2 }.value == 2)
            #expect(try await countRows(store, table, id: "slow") == 0)
        }
    }

    @Test("a caller cancelled while its body runs commits nothing, even when the body never suspends", arguments: storeBackends)
    func cancelledBeforeCommit(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.cancelledBeforeCommit(store) }
    }

    static func cancelledBeforeCommit<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
        let scope = try Scope(uniqueName("cancel"))
        let runs = Counter()
        let started = Latch()
        let cancelled = Latch()
        let task = Task {
            try await operations.perform(key: "quick", scope: scope) { _ in
                started.open()
                await cancelled.wait()  // the caller is cancelled while the body runs; it returns normally
                runs.increment()
                return 1
            }
        }
        await started.wait()
        task.cancel()
        cancelled.open()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(runs.value == 1)
        #expect(try await operations.status(of: "quick", scope: scope) == .notStarted, "nothing of the cancelled step committed")
    }

    @Test(
        "a step's transaction kept past its step is refused with step_ended before anything is sent, on every SQL store",
        arguments: storeBackends.filter { $0 != .memory }
    )
    func transactionPastItsStep(backend: Backend) async throws {
        try await withAnyStore(backend) { store in
            let sql: any SQLStore = try #require(store as? any SQLStore)
            try await Self.transactionPastItsStep(sql)
        }
    }

    static func transactionPastItsStep<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("escaped")
        try await createEffectsTable(store, table)
        // Once after a step that committed, once after one that threw.
        let committed = try await store.withTransaction { tx in tx }
        let escaped = Mutex<S.Transaction?>(nil)
        await #expect(throws: CancellationError.self) {
            try await store.withTransaction { tx in
                escaped.withLock { $0 = tx }
                throw CancellationError()
            }
        }
        let rolledBack = try #require(escaped.withLock { $0 })
        let read = try await store.step(StepInfo("read", "", clock: SystemWallClock(), isReadOnly: true)) { $0.transaction }
        for kept in [committed, rolledBack, read] {
            let code = try await within(.seconds(60), "a statement on a transaction past its step") {
                do {
                    try await kept.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('late', 'w', 0)")
                    return "sent"
                } catch let error as UnraceError {
                    return error.code.rawValue
                }
            }
            #expect(code == "step_ended")
            let queued = try await within(.seconds(60), "a statement queued for COMMIT on a transaction past its step") {
                do {
                    try await kept.executeBeforeCommit("INSERT INTO \(table) (id, worker, seq) VALUES ('queued', 'w', 0)", [])
                    return "queued"
                } catch let error as UnraceError {
                    return error.code.rawValue
                }
            }
            #expect(queued == "step_ended")
        }
        #expect(try await countRows(store, table) == 0)
    }

    @Test(
        "a MemoryStore transaction kept past its step changes nothing the store keeps (its writes are discarded) and reads an empty store, however the step ended"
    )
    func memoryTransactionPastItsStep() async throws {
        let store = MemoryStore()
        let kept = try await store.withTransaction { tx in
            tx.put("effects", id: "in-step", [1])
            return tx
        }
        kept.put("effects", id: "late", [2])
        _ = try await store.withTransaction { tx in tx.put("effects", id: "next", [3]) }
        #expect(store.rows(in: "effects") == ["in-step": [1], "next": [3]])
        #expect(kept.rows(in: "effects") == ["late": [2]], "only its own late write, not the store's rows")
        #expect(kept.get("effects", id: "in-step") == nil)

        struct Refused: Error {}
        let escaped = Mutex<MemoryTransaction?>(nil)
        await #expect(throws: Refused.self) {
            try await store.withTransaction { tx in
                escaped.withLock { $0 = tx }
                throw Refused()
            }
        }
        let rolledBack = try #require(escaped.withLock { $0 })
        #expect(rolledBack.count("effects") == 0)
        #expect(rolledBack.insert("effects", id: "next", [4]), "the store's rows are not its to see")
        #expect(store.rows(in: "effects") == ["in-step": [1], "next": [3]])
    }

    @Test("a perform inside a perform body fails at once with nested_step, on every store", arguments: storeBackends)
    func nestedPerform(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.nestedPerform(store) }
    }

    static func nestedPerform<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
        let scope = try Scope(uniqueName("nested"))
        let outcome = try await within(.seconds(60), "a nested perform") {
            try await operations.perform(key: "outer", scope: scope) { _ in
                do {
                    _ = try await operations.perform(key: "inner", scope: scope) { _ in 1 }
                    return "nested perform ran"
                } catch let error as UnraceError {
                    return error.code.rawValue
                }
            }
        }
        #expect(outcome.value == "nested_step")
        #expect(try await operations.status(of: "inner", scope: scope) == .notStarted)
    }
}
