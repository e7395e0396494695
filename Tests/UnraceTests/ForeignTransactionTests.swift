import Foundation
import Testing
import Unrace
import UnraceSQLite

/// A store adds its rows only to a transaction it handed out. Another store's transaction runs
/// on that store's database, schema or tenant: a queue that joined it would put the message
/// there, where the other store's workers of a queue of the same name deliver it.
@Suite("Transactions of another store", .timeLimit(.minutes(5)))
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

    @Test("two SQLite stores on one file: each refuses the other's transaction, so the rule does not hang on where the rows land")
    func sameFile() async throws {
        try await withStore(.sqlite) { first, path in
            let second = try await SQLiteStore(path: path)
            let queue = try QueueTests.queue(second, ManualWallClock())
            _ = try await (first as! SQLiteStore).withTransaction { tx in
                #expect(await QueueTests.code { try await queue.enqueue([QueueTests.message("m")], in: tx) } == "invalid_argument")
            }
            #expect(try await queue.depth() == QueueDepth())
        }
    }
}
