import Foundation
import Testing
import Unrace
import UnraceSQLite

/// `GET /health` answers within its bound whatever holds the database: a load balancer that gets
/// no answer cannot tell a slow replica from a dead one.
@Suite("Health", .timeLimit(.minutes(2)))
struct HealthTests {
    @Test("on SQLite a file another store holds locked gets 503 from GET /health within its 2 s, not after the busy timeout; then 200")
    func lockedFile() async throws {
        try await withShop(.sqlite) { client, _, path in
            #expect(try await client.send(.GET, "/health").status == 200)
            // Another process's writer, as far as SQLite can tell: a store of its own on the file,
            // holding its write lock (the shop's store would wait up to its 10 s busy timeout).
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
            try await within(.seconds(20), "the other store's write lock") { await held.wait() }
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
            #expect(elapsed < .seconds(6), "answered after \(elapsed); the bound is 2 s")
            #expect(try await client.send(.GET, "/health").status == 200, "the lock is gone")
        }
    }
}
