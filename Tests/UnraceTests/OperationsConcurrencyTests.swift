import Foundation
import Testing
import Unrace
import UnraceSQL

/// The double-execution race, as a race: many deliveries of one message at once.
@Suite("Operations under concurrent duplicates")
struct OperationsConcurrencyTests {
    struct Captured: Codable, Sendable, Hashable {
        var paymentID: String
        var worker: Int
    }

    @Test("64 concurrent performs of one key: one effect, one result, 63 replays", arguments: sqlBackends)
    func sixtyFourDuplicates(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.sixtyFour(store) }
    }

    static func sixtyFour<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("payments")
        try await createEffectsTable(store, table)
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("payments"))

        let receipts = try await withThrowingTaskGroup(of: Receipt<Captured>.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    try await operations.perform(key: "capture:pay_1", scope: scope) { tx in
                        try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES (?, ?, 0)", ["pay_1", .text("\(worker)")])
                        return Captured(paymentID: "pay_1", worker: worker)
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }

        #expect(try await countRows(store, table, id: "pay_1") == 1)
        #expect(receipts.count == 64)
        #expect(Set(receipts.map(\.value)).count == 1, "every caller gets the same result")
        #expect(receipts.filter(\.isReplay).count == 63)
        let winner = try #require(receipts.first { !$0.isReplay })
        #expect(receipts.allSatisfy { $0.value == winner.value && $0.token == .first })
    }

    @Test("naive check-then-insert under a forced interleaving duplicates; perform does not", arguments: sqlBackends)
    func naiveAgainstGuarded(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.naiveAgainstGuarded(store) }
    }

    /// Two workers got the same redelivered message. The naive handler asks "have I seen this?"
    /// and then acts, in two steps; a barrier makes both ask before either acts.
    static func naiveAgainstGuarded<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("orders")
        try await createEffectsTable(store, table)

        let bothChecked = Barrier(parties: 2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<2 {
                group.addTask {
                    let counted = await outcome { try await countRows(store, table, id: "order_7") }
                    await bothChecked.arriveAndWait()
                    let seen = try counted.get()
                    if seen == 0 {
                        _ = try await store.withTransaction { tx in
                            try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('order_7', ?, 0)", [.text("\(worker)")])
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await countRows(store, table, id: "order_7") == 2, "the naive handler creates the order twice")

        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("orders"))
        let bothReady = Barrier(parties: 2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<2 {
                group.addTask {
                    await bothReady.arriveAndWait()
                    _ = try await operations.perform(key: "create:order_8", scope: scope) { tx in
                        try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('order_8', ?, 0)", [.text("\(worker)")])
                        return worker
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await countRows(store, table, id: "order_8") == 1, "the guarded handler creates it once")
    }

    @Test("a body that hits a business unique key of a committed duplicate is replayed, not failed", arguments: sqlBackends)
    func businessUniqueKeyReplays(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            try await Self.businessUnique(store)
        }
    }

    static func businessUnique<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("coupons")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (code TEXT PRIMARY KEY, redeemed_by TEXT NOT NULL)")
        }
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("coupons"))
        let receipts = try await withThrowingTaskGroup(of: Receipt<String>.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    try await operations.perform(key: "redeem:SAVE10", scope: scope) { tx in
                        try await tx.execute("INSERT INTO \(table) (code, redeemed_by) VALUES ('SAVE10', ?)", [.text("w\(worker)")])
                        return "w\(worker)"
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(receipts.filter { !$0.isReplay }.count == 1)
        #expect(Set(receipts.map(\.value)).count == 1)
    }
}
