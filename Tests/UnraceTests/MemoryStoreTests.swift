import Testing
import Unrace

/// The in-memory reference store keeps the same promises as the SQL stores.
@Suite("MemoryStore")
struct MemoryStoreTests {
    @Test("64 concurrent performs: one effect, 63 replays")
    func duplicates() async throws {
        let store = MemoryStore()
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
        let receipts = try await withThrowingTaskGroup(of: Receipt<Int>.self) { group in
            for worker in 0..<64 {
                group.addTask {
                    try await operations.perform(key: "email:welcome:u1") { tx in
                        tx.put("emails", id: "u1-\(worker)", [1])
                        return worker
                    }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(store.rows(in: "emails").count == 1)
        #expect(receipts.filter(\.isReplay).count == 63)
        #expect(Set(receipts.map(\.value)).count == 1)
    }

    @Test("a fenced holder's writes never commit")
    func fenced() async throws {
        let store = MemoryStore()
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.lease = .seconds(1)
        configuration.clock = clock
        let operations = try Operations(store: store, configuration: configuration)
        guard case .acquired(let old) = try await operations.begin(key: "k") else { return #expect(Bool(false)) }
        clock.advance(by: .seconds(2))
        guard case .acquired(let new) = try await operations.begin(key: "k") else { return #expect(Bool(false)) }
        let error = await #expect(throws: UnraceError.self) {
            try await operations.complete(old, result: "old") { tx in tx.put("effects", id: "old", [1]) }
        }
        #expect(error?.code == .fenced)
        try await operations.complete(new, result: "new") { tx in tx.put("effects", id: "new", [1]) }
        #expect(Array(store.rows(in: "effects").keys) == ["new"])
    }
}
