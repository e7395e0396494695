import FluentKit
import Foundation
import Testing
import Unrace
import UnraceFluent

/// Fluent models written in a `perform` body commit with the claim, or not at all, on both
/// Fluent drivers.
@Suite("Fluent models in the claim's transaction", .timeLimit(.minutes(3)))
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

    @Test("a body that throws after creating a model leaves no model and frees the key", arguments: drivers)
    func throwingBody(_ driver: SQLBackend) async throws {
        struct Declined: Error {}
        try await withFluentStore(driver) { store, database in
            try await Self.migrate(database)
            let operations = try Operations(store: store, configuration: .init())
            await #expect(throws: Declined.self) {
                _ = try await operations.perform(key: "k") { tx -> Int in
                    try await ContractOrder(id: "o1", sku: "widget", quantity: 1).create(on: tx.fluent)
                    throw Declined()
                }
            }
            #expect(try await ContractOrder.query(on: database).count() == 0)
            #expect(try await operations.perform(key: "k") { tx in
                try await ContractOrder(id: "o1", sku: "widget", quantity: 1).create(on: tx.fluent)
                return 1
            }.value == 1)
            #expect(try await ContractOrder.query(on: database).count() == 1)
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
}
