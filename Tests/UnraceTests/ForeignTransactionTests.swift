import FluentKit
import Foundation
import NIOPosix
import Testing
import Unrace
import UnraceFluent
import UnracePostgres
import UnraceSQLite

/// A store adds its rows only to a transaction it handed out. Another store's transaction runs
/// on that store's database, schema or tenant: a queue that joined it would put the message
/// there, where the other store's workers of a queue of the same name deliver it.
@Suite("Transactions of another store", .timeLimit(.minutes(10)))
struct ForeignTransactionTests {
    @Test(
        "a queue refuses a transaction another store handed out, with invalid_argument, and neither store's queue changes",
        arguments: storeBackends
    )
    func foreignTransaction(backend: Backend) async throws {
        try await withAnyStore(backend) { mine in
            try await withAnyStore(backend) { theirs in try await Self.foreignTransaction(mine, theirs) }
        }
    }

    static func foreignTransaction<S: Store>(_ mine: S, _ other: any Store) async throws {
        let theirs = try #require(other as? S)
        let clock = ManualWallClock()
        let name = uniqueName("q")
        let myQueue = try QueueTests.queue(mine, clock, name: name)
        let theirQueue = try QueueTests.queue(theirs, clock, name: name)

        // Their transaction, my queue, a queue name both stores use: the caller commits anyway.
        _ = try await Operations(store: theirs).perform(key: "order-1") { tx -> String in
            #expect(
                await QueueTests.code { try await myQueue.enqueue([QueueTests.message("email-order-1")], in: tx) } == "invalid_argument"
            )
            return "committed anyway"
        }
        #expect(try await theirQueue.depth() == QueueDepth(), "nothing landed in the other store under my queue's name")
        #expect(try await myQueue.depth() == QueueDepth())

        // An ack in their transaction is refused too; the delivery stays leased.
        try await myQueue.enqueue([QueueTests.message("email-order-2")])
        let delivery = try #require(try await myQueue.lease(worker: "mailer").first)
        _ = try await Operations(store: theirs).perform(key: "order-2") { tx -> String in
            #expect(await QueueTests.code { try await myQueue.ack(delivery, in: tx) } == "invalid_argument")
            return "committed anyway"
        }
        #expect(try await myQueue.depth() == QueueDepth(leased: 1))

        // The store's own transactions join as before.
        _ = try await Operations(store: mine).perform(key: "order-2") { tx -> String in
            try await myQueue.ack(delivery, in: tx)
            return "acked"
        }
        #expect(try await myQueue.depth() == QueueDepth(done: 1))
        #expect(try await theirQueue.depth() == QueueDepth())
    }

    /// Enqueues through `queue` in a transaction of `other`, and returns the error code or nil.
    static func enqueue<S: Store>(_ queue: MessageQueue<S>, in other: S, id: String) async throws -> String? {
        try await other.withTransaction { tx in
            await QueueTests.code { try await queue.enqueue([QueueTests.message(id)], in: tx) }
        }
    }

    @Test("two SQLite stores on one file join each other's transactions: the rows land in that one file either way")
    func sameFile() async throws {
        try await withStore(.sqlite) { first, path in
            let first = try #require(first as? SQLiteStore)
            let second = try await SQLiteStore(path: path)
            let clock = ManualWallClock()
            let queue = try QueueTests.queue(second, clock, name: "shared")
            #expect(try await Self.enqueue(queue, in: first, id: "m") == nil)
            #expect(try await queue.depth() == QueueDepth(ready: 1))
            #expect(try await QueueTests.queue(first, clock, name: "shared").depth() == QueueDepth(ready: 1))
        }
    }

    @Test(
        "PostgreSQL stores made from one URL join each other's transactions; a store on another search_path refuses them",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func sameURL() async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: location) { first in
                try await PostgresStore.withStore(url: location) { second in
                    let queue = try QueueTests.queue(second, ManualWallClock(), name: "shared")
                    #expect(try await Self.enqueue(queue, in: first, id: "m") == nil)
                    #expect(try await queue.depth() == QueueDepth(ready: 1))
                }
                // A search_path spelled in capitals names the same schema: PostgreSQL folds it.
                let shouted = try #require(location.range(of: "search_path=")).upperBound
                let capitals = String(location[..<shouted]) + location[shouted...].uppercased()
                try await PostgresStore.withStore(url: capitals) { second in
                    let queue = try QueueTests.queue(second, ManualWallClock(), name: "shouted")
                    #expect(try await Self.enqueue(queue, in: first, id: "c") == nil)
                }
                // A store made on the URL store's own client is on the same database.
                let onClient = try await PostgresStore(client: first.client)
                let queue = try QueueTests.queue(onClient, ManualWallClock(), name: "client")
                #expect(try await Self.enqueue(queue, in: first, id: "k") == nil)
                #expect(try await queue.depth() == QueueDepth(ready: 1))
            }
            let other = uniqueName("t")
            try await TestPostgres.execute("CREATE SCHEMA \(other)")
            let elsewhere = try TestPostgres.requireURL(adding: "search_path=\(other)")
            try await PostgresStore.withStore(url: location) { first in
                try await PostgresStore.withStore(url: elsewhere) { second in
                    let queue = try QueueTests.queue(second, ManualWallClock(), name: "shared")
                    #expect(try await Self.enqueue(queue, in: first, id: "n") == "invalid_argument")
                    #expect(try await queue.depth() == QueueDepth())
                }
            }
            try await TestPostgres.execute("DROP SCHEMA \(other) CASCADE")
        }
    }

    @Test("Fluent stores on one application database join each other's transactions", arguments: sqlBackends)
    func sameFluentDatabase(driver: SQLBackend) async throws {
        try await withFluentDatabases(driver) { first, _, databases in
            let second = try await FluentStore(databases: databases)
            let queue = try QueueTests.queue(second, ManualWallClock(), name: "shared")
            #expect(try await Self.enqueue(queue, in: first, id: "m") == nil)
            #expect(try await queue.depth() == QueueDepth(ready: 1))
        }
    }

    @Test(
        "a Fluent store named by the default database's id is the store made with nil; an unknown id, or nil with no default, is invalid_configuration",
        arguments: sqlBackends
    )
    func fluentDatabaseIDs(driver: SQLBackend) async throws {
        try await withFluentDatabases(driver) { first, _, databases in
            let named = try await FluentStore(databases: databases, id: driver == .sqlite ? .sqlite : .psql)
            let queue = try QueueTests.queue(named, ManualWallClock(), name: "shared")
            #expect(try await Self.enqueue(queue, in: first, id: "m") == nil)
            #expect(try await queue.depth() == QueueDepth(ready: 1))
            #expect(
                await QueueTests.code { _ = try await FluentStore(databases: databases, id: DatabaseID(string: "reporting")) }
                    == "invalid_configuration"
            )
        }
        let bare = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
        #expect(await QueueTests.code { _ = try await FluentStore(databases: bare) } == "invalid_configuration", "FluentKit traps here")
        await bare.shutdownAsync()
    }

    @Test(
        "SQLite stores on two files whose names are equal as Swift strings (NFC and NFD) refuse each other's transactions; a path with NUL, or a file with a second hard link, is refused and creates nothing"
    )
    func sqliteFileIdentity() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-files"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let composed = try await SQLiteStore(path: folder.path + "/caf\u{E9}.sqlite")
        let decomposed = try await SQLiteStore(path: folder.path + "/cafe\u{301}.sqlite")
        #if os(Linux)  // file names are bytes here; APFS takes the two spellings for one name
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sqlite") }
        #expect(files.count == 2, "two files on disk: \(files)")
        let queue = try QueueTests.queue(decomposed, ManualWallClock(), name: "shared")
        #expect(try await Self.enqueue(queue, in: composed, id: "m") == "invalid_argument")
        #expect(try await queue.depth() == QueueDepth())
        #expect(try await QueueTests.queue(composed, ManualWallClock(), name: "shared").depth() == QueueDepth())
        #endif
        _ = (composed, decomposed)
        #expect(await QueueTests.code { _ = try await SQLiteStore(path: "file:" + folder.path + "/uri.sqlite") } == "invalid_argument")

        let error = await #expect(throws: UnraceError.self) { _ = try await SQLiteStore(path: folder.path + "/a.sqlite\u{0}.bak") }
        #expect(error?.code == .invalidArgument)
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/a.sqlite"), "nothing was opened under the cut name")

        // A hard link is a second name SQLite would give its own WAL and lock: refused, through
        // either name, with nothing opened; a symbolic link resolves to the one name.
        let linked = folder.path + "/linked.sqlite"
        _ = try await SQLiteStore(path: linked)
        try FileManager.default.linkItem(atPath: linked, toPath: folder.path + "/hard.sqlite")
        #expect(await QueueTests.code { _ = try await SQLiteStore(path: folder.path + "/hard.sqlite") } == "invalid_argument")
        #expect(await QueueTests.code { _ = try await SQLiteStore(path: linked) } == "invalid_argument")
        #expect(!FileManager.default.fileExists(atPath: folder.path + "/hard.sqlite-wal"))
        try FileManager.default.removeItem(atPath: folder.path + "/hard.sqlite")
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/soft.sqlite", withDestinationPath: linked)
        _ = try await SQLiteStore(path: folder.path + "/soft.sqlite")
    }
}
