import Foundation
import Testing
import Unrace
import UnraceSQL
import UnraceSQLite
import UnraceShop

/// `GET /health` answers within its bound whatever holds the database: a load balancer that gets
/// no answer cannot tell a slow replica from a dead one.
@Suite("Health", .timeLimit(.minutes(10)))
struct HealthTests {
    @Test(
        "on SQLite a file another store holds locked gets 503 from GET /health within its bound, not after the store's busy timeout; then 200"
    )
    func lockedFile() async throws {
        var configuration = ShopConfiguration()
        // Longer than the default 2 s, for a loaded test machine.
        configuration.healthTimeout = .seconds(4)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("health"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("shop.sqlite").path
        // A busy timeout far past the health bound: an answer that waited for it is told apart
        // from one the bound gave, however loaded the machine.
        var sqlite = SQLiteStore.Configuration()
        sqlite.busyTimeout = .seconds(60)
        let store = try await SQLiteStore(path: path, configuration: sqlite)
        let shop = try Shop(store: store, configuration: configuration)
        try await shop.setUp()
        try await withInProcessServer(try shop.router()) { client in
            // Another process's writer, as far as SQLite can tell: a store of its own on the file,
            // holding its write lock (the shop's store would wait up to its 60 s busy timeout).
            let other = try await SQLiteStore(path: path)
            let held = Latch()
            let release = Latch()
            let holder = Task {
                try await other.withTransaction { tx in
                    _ = try await tx.query("SELECT 1")  // BEGIN IMMEDIATE goes with the first statement
                    held.open()
                    await release.wait()
                }
            }
            try await within(.seconds(60), "the other store's write lock") { await held.wait() }
            let started = ContinuousClock.now
            let locked: HTTPExchange
            do {
                locked = try await client.send(.GET, "/health")
            } catch {
                release.open()
                _ = await holder.result
                throw error
            }
            let elapsed = ContinuousClock.now - started
            release.open()
            try await holder.value
            #expect(locked.status == 503 && locked.problemCode == "service_unavailable", "\(locked.status) \(locked.body)")
            #expect(elapsed < .seconds(30), "answered after \(elapsed); the bound is 4 s, the busy timeout 60 s")
            // The lock is gone: the next probe takes the writer (asked again while a loaded
            // machine keeps it past the bound).
            var status = 0
            for _ in 0..<10 where status != 200 { status = try await client.send(.GET, "/health").status }
            #expect(status == 200)
        }
    }
}
