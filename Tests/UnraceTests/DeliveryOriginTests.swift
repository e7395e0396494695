import Foundation
import Testing
import Unrace
import UnracePostgres
import UnraceSQLite

/// A delivery settles a message only on the rows it was leased from: two stores (two tenants'
/// schemas, two files) can hold a message of the same queue, id, position and attempt.
@Suite("Delivery origin")
struct DeliveryOriginTests {
    @Test(
        "a delivery from another store's queue of the same name is refused by ack, nack and extend; both messages stay as they were",
        arguments: storeBackends
    )
    func anotherStore(_ backend: Backend) async throws {
        try await withAnyStore(backend) { one in
            try await withAnyStore(backend) { other in try await Self.refusesCrossed(one, other) }
        }
    }

    static func refusesCrossed<A: Store, B: Store>(_ one: A, _ other: B) async throws {
        let queueOne = try MessageQueue(store: one, name: "orders")
        let queueOther = try MessageQueue(store: other, name: "orders")
        _ = try await queueOne.enqueue([OutgoingMessage(id: "m1", payload: [1])])
        _ = try await queueOther.enqueue([OutgoingMessage(id: "m1", payload: [1])])
        let fromOne = try #require(try await queueOne.lease(worker: "w").first)
        let fromOther = try #require(try await queueOther.lease(worker: "w").first)
        // Everything the fence compares is alike: only the store tells them apart.
        #expect(fromOne.id == fromOther.id && fromOne.position == fromOther.position && fromOne.attempt == fromOther.attempt)
        let refusals = [
            await #expect(throws: UnraceError.self) { try await queueOther.ack(fromOne) },
            await #expect(throws: UnraceError.self) { try await queueOther.nack(fromOne, reason: "crossed") },
            await #expect(throws: UnraceError.self) { _ = try await queueOther.extend(fromOne, by: .seconds(60)) },
        ]
        #expect(refusals.map { $0?.code } == [.invalidArgument, .invalidArgument, .invalidArgument])
        // Also in a transaction of the queue's own store, which that store joins.
        let inTransaction = await #expect(throws: UnraceError.self) {
            try await other.withTransaction { tx in try await queueOther.ack(fromOne, in: tx) }
        }
        #expect(inTransaction?.code == .invalidArgument && inTransaction?.message.contains("another store") == true)
        // The other store's message is still leased to its own delivery, which settles it.
        try await queueOther.ack(fromOther)
        try await queueOne.ack(fromOne)
        #expect(try await queueOther.lease(worker: "w").isEmpty)
        #expect(try await queueOne.lease(worker: "w").isEmpty)
    }

    @Test("two stores on the same rows (one SQLite file, one PostgreSQL schema) settle each other's deliveries", arguments: sqlBackends)
    func sameRows(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in
            switch backend {
            case .sqlite:
                // The same file by another spelling of its path.
                let file = URL(fileURLWithPath: location)
                let respelled = file.deletingLastPathComponent().path + "/./" + file.lastPathComponent
                try await Self.settlesShared(store, try await SQLiteStore(path: respelled))
            case .postgres:
                // The same location by another URL: query items in another order, no connect_timeout.
                var respelled = try #require(URLComponents(string: location))
                respelled.queryItems = respelled.queryItems?.filter { $0.name != "connect_timeout" }.reversed()
                respelled.queryItems?.append(URLQueryItem(name: "sslmode", value: "disable"))
                let url = try #require(respelled.string)
                try await PostgresStore.withStore(url: url) { other in try await Self.settlesShared(store, other) }
            }
        }
    }

    @Test("a store of your own, which cannot tell its rows (a wrapper), settles deliveries of the store it wraps, and they its")
    func wrapperIsNotChecked() async throws {
        try await withStore(.sqlite) { store, _ in
            guard let sqlite = store as? SQLiteStore else { throw UnraceError(.invalidArgument, "not SQLite") }
            try await Self.settlesShared(sqlite, CountingStore(inner: sqlite), queue: "wrapped-second")
            try await Self.settlesShared(CountingStore(inner: sqlite), sqlite, queue: "wrapped-first")
        }
    }

    static func settlesShared<A: Store, B: Store>(_ one: A, _ other: B, queue: String = "orders") async throws {
        let queueOne = try MessageQueue(store: one, name: queue)
        let queueOther = try MessageQueue(store: other, name: queue)
        _ = try await queueOne.enqueue([OutgoingMessage(id: "m1", payload: [1]), OutgoingMessage(id: "m2", payload: [2])])
        let leased = try await queueOne.lease(limit: 2, worker: "w")
        #expect(leased.count == 2)
        try await queueOther.ack(leased[0])
        _ = try await queueOther.extend(leased[1], by: .seconds(60))
        let nacked = try await queueOther.nack(leased[1], reason: "again", retryAfter: .zero)
        #expect(nacked != .deadLettered)
        let again = try await queueOne.lease(worker: "w")
        #expect(again.map(\.id) == ["m2"] && again.first?.attempt == 2)
    }
}
