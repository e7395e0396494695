import FluentKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLKit
import Testing
import Unrace
import UnracePostgres

@testable import UnraceFluent

/// Fluent models written in a `perform` body commit with the claim, or not at all, on both
/// Fluent drivers.
@Suite("Fluent models in the claim's transaction", .timeLimit(.minutes(10)))
struct FluentStoreTests {
    static var drivers: [SQLBackend] { sqlBackends }

    static func migrate(_ database: any Database) async throws {
        try await CreateContractTables().prepare(on: database)
    }

    @Test("64 concurrent performs of one key that create a Fluent model: one model, 64 equal receipts, 63 replays", arguments: drivers)
    func sixtyFour(_ driver: SQLBackend) async throws {
        try await withFluentStore(driver) { store, database in
            try await Self.migrate(database)
            let operations = try Operations(store: store, configuration: .init())
            let runs = Counter()
            let receipts = try await withThrowingTaskGroup(of: Receipt<String>.self) { group in
                for _ in 0..<64 {
                    group.addTask {
                        try await operations.perform(key: "order-1") { tx in
                            runs.increment()
                            let id = UUID().uuidString
                            try await ContractOrder(id: id, sku: "widget", quantity: 1).create(on: tx.fluent)
                            return id
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(runs.value == 1, "the body ran once: a duplicate never runs it")
            #expect(Set(receipts.map(\.value)).count == 1)
            #expect(receipts.filter(\.isReplay).count == 63)
            #expect(try await ContractOrder.query(on: database).count() == 1)
        }
    }

    @Test("two FluentStores of separate applications on one SQLite file, 64 performs of one key across both: the body runs once")
    func twoStoresOneFile() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-fluent-two"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let file = folder.appendingPathComponent("shared.sqlite").path
        // Two applications' databases (two pools, two writers in this process) on one file.
        let apps = (0..<2).map { _ in Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton) }
        for databases in apps { databases.use(.sqlite(.file(file), connectionPoolTimeout: .seconds(60)), as: .sqlite) }
        let outcome: Result<(runs: Int, replays: Int, values: Int, models: Int), any Error>
        do {
            let first = try await FluentStore(databases: apps[0])
            let second = try await FluentStore(databases: apps[1])
            try await Self.migrate(first.database)
            let operations = [try Operations(store: first), try Operations(store: second)]
            let runs = Counter()
            let receipts = try await withThrowingTaskGroup(of: Receipt<String>.self) { group in
                for index in 0..<64 {
                    group.addTask {
                        try await operations[index % 2].perform(key: "order-1") { tx in
                            runs.increment()
                            let id = UUID().uuidString
                            try await ContractOrder(id: id, sku: "widget", quantity: 1).create(on: tx.fluent)
                            return id
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let models = try await ContractOrder.query(on: first.database).count()
            outcome = .success((runs.value, receipts.filter(\.isReplay).count, Set(receipts.map(\.value)).count, models))
        } catch {
            outcome = .failure(error)
        }
        for databases in apps { await databases.shutdownAsync() }
        let seen = try outcome.get()
        #expect(seen.runs == 1, "the body ran once across both stores")
        #expect(seen.replays == 63)
        #expect(seen.values == 1)
        #expect(seen.models == 1)
    }

    @Test("a body that throws after creating a model leaves no model and frees the key", arguments: drivers)
    func throwingBody(_ driver: SQLBackend) async throws {
        try await withFluentStore(driver) { store, database in
            try await Self.migrate(database)
            let operations = try Operations(store: store, configuration: .init())
            try await Self.throwThenCommit(operations, database) { tx in
                try await ContractOrder(id: "o1", sku: "widget", quantity: 1).create(on: tx.fluent)
            }
            // The outbox on a Fluent transaction: a message commits with the model.
            let queue = try MessageQueue(store: store, name: "fluent-q")
            _ = try await operations.perform(key: "with-message") { tx in
                try await ContractOrder(id: "o2", sku: "widget", quantity: 1).create(on: tx.fluent)
                try await queue.enqueue([OutgoingMessage(id: "capture:o2", payload: [1])], in: tx)
                return 2
            }
            #expect(try await queue.depth() == QueueDepth(ready: 1))
        }
    }

    @Test("a Fluent transaction opened on tx.fluent runs in the step's: it commits with the step, or not at all", arguments: drivers)
    func fluentTransactionInsideTheStep(_ driver: SQLBackend) async throws {
        try await withFluentStore(driver) { store, database in
            try await Self.migrate(database)
            let operations = try Operations(store: store, configuration: .init())
            try await Self.throwThenCommit(operations, database) { tx in
                try await tx.fluent.transaction { db in try await ContractOrder(id: "o1", sku: "widget", quantity: 1).create(on: db) }
            }
        }
    }

    /// A perform of key `k` whose body runs `create` and then throws leaves no model (and the key
    /// free); the next perform, which runs `create` and returns, leaves one.
    static func throwThenCommit(
        _ operations: Operations<FluentStore>,
        _ database: any Database,
        _ create: @escaping (FluentTransaction) async throws -> Void
    ) async throws {
        struct Declined: Error {}
        await #expect(throws: Declined.self) {
            _ = try await operations.perform(key: "k") { tx -> Int in
                try await create(tx)
                throw Declined()
            }
        }
        #expect(try await ContractOrder.query(on: database).count() == 0, "nothing of the body that threw committed")
        let receipt = try await operations.perform(key: "k") { tx -> Int in
            try await create(tx)
            return 1
        }
        #expect(receipt.value == 1 && !receipt.isReplay)
        #expect(try await ContractOrder.query(on: database).count() == 1)
    }

    @Test("a trigger's RAISE(ABORT) and a STRICT table's wrong type are constraint_violation on both SQLite stores")
    func sqliteConstraintKinds() async throws {
        let expected: [String?] = ["constraint_violation", "constraint_violation"]
        let grdb = try await withStore(.sqlite) { store, _ in try await Self.constraintCodes(store) }
        let fluent = try await withFluentStore(.sqlite) { store, _ in try await Self.constraintCodes(store) }
        #expect(grdb == expected)
        #expect(fluent == expected)
    }

    static func constraintCodes(_ store: some SQLStore) async throws -> [String?] {
        let table = uniqueName("guarded")
        try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (a INTEGER) STRICT")
            try await tx.execute(
                "CREATE TRIGGER \(table)_refuse BEFORE INSERT ON \(table) WHEN NEW.a = 1 BEGIN SELECT RAISE(ABORT, 'no'); END"
            )
        }
        var codes: [String?] = []
        for statement in ["INSERT INTO \(table) VALUES (1)", "INSERT INTO \(table) VALUES ('x')"] {
            codes.append(await QueueTests.code { try await store.withTransaction { tx in try await tx.execute(statement) } })
        }
        return codes
    }

    @Test(
        "on FluentSQLiteDriver a reader's open transaction on another connection does not hold a step's COMMIT: the store puts the file in WAL"
    )
    func readerDoesNotBlockCommit() async throws {
        // Two event loops of its own: FluentSQLiteDriver keeps one connection per loop, and the
        // store writes on the first loop's; the reader takes the second's.
        let loops = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let databases = Databases(threadPool: NIOThreadPool.singleton, on: loops)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-wal"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        databases.use(.sqlite(.file(folder.appendingPathComponent("app.sqlite").path)), as: .sqlite)
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let outcome: Result<(Int, String?), any Error>
        do {
            let store = try await FluentStore(databases: databases, stepTimeout: .seconds(1), logger: quiet)
            let operations = try Operations(store: store)
            let database = try #require(databases.database(logger: quiet, on: Array(loops.makeIterator())[1]))
            let held = Latch()
            let release = Latch()
            // A report route's read transaction, left open on a connection of its own.
            let reader = Task {
                try await database.withConnection { db in
                    let sql = db as! any SQLDatabase
                    try await sql.raw("BEGIN").run()
                    _ = try await sql.raw("SELECT count(*) AS n FROM unrace_operations").all()
                    held.open()
                    await release.wait()
                    try await sql.raw("COMMIT").run()
                }
            }
            await held.wait()
            let answer: Result<Int, any Error>
            do { answer = .success(try await operations.perform(key: "k") { _ in 1 }.value) } catch { answer = .failure(error) }
            release.open()
            try await reader.value
            let mode = try await (database as! any SQLDatabase).raw("PRAGMA journal_mode").first()?.decode(
                column: "journal_mode",
                as: String.self
            )
            outcome = .success((try answer.get(), mode))
        } catch {
            outcome = .failure(error)
        }
        await databases.shutdownAsync()
        try await loops.shutdownGracefully()
        try? FileManager.default.removeItem(at: folder)
        let (value, mode) = try outcome.get()
        #expect(value == 1 && mode == "wal")
    }
}
