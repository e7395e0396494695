import Foundation
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// The durable queue on the SQL stores only: a purge racing another purger's delete, and workers
/// in separate OS processes.
extension QueueTests {
    @Test(
        "a purge whose messages another step deleted first reports what it deleted, not what it read (PostgreSQL)",
        .enabled(if: TestPostgres.required)
    )
    func purgeCountsWhatItDeleted() async throws {
        try await withStore(.postgres) { store, _ in try await Self.purgeCountsWhatItDeleted(store) }
    }

    static func purgeCountsWhatItDeleted<S: SQLStore>(_ store: S) async throws {
        do {
            let clock = ManualWallClock()
            let queue = try Self.queue(store, clock)
            try await queue.enqueue((1...3).map { Self.message("m\($0)") })
            for delivery in try await queue.lease(limit: 3, worker: "w") { try await queue.ack(delivery) }
            clock.advance(by: .seconds(120))
            // Another purger's step: it has deleted the three rows and not yet committed.
            let deleted = Latch()
            let release = Latch()
            let otherPID = BackendPID()
            let other = Task {
                try await store.withTransaction { tx in
                    try await tx.execute("DELETE FROM unrace_queue_messages WHERE queue = ?", [.text(queue.name)])
                    let pid = try await tx.query("SELECT pg_backend_pid() AS pid").first?["pid"]
                    otherPID.value.withLock { $0 = pid }
                    deleted.open()
                    await release.wait()
                }
            }
            try await within(.seconds(60), "the other purger's delete") { await deleted.wait() }
            let blocker = try #require(otherPID.value.withLock { $0 })
            // This purge reads the three (the delete is not committed), then waits on their locks.
            let purge = Task { try await queue.purgeCompleted(olderThan: .seconds(60)) }
            try await within(.seconds(60), "the purge's DELETE waiting on the other step's locks") {
                while try await store.withTransaction({ tx in
                    try await tx.query(
                        // Blocked by this test's other step, not any other test's.
                        "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'DELETE FROM unrace_queue_messages WHERE queue = $1 AND state%' AND ? = ANY(pg_blocking_pids(pid))",
                        [blocker]
                    )
                }).first?["n"] != .integer(1) {
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            release.open()
            try await other.value
            #expect(try await purge.value == 0, "the other step deleted all three")
            #expect(try await queue.depth() == QueueDepth())
        }
    }

    @Test("4 worker processes share 2,000 messages (SKIP LOCKED on PostgreSQL): none lost, none handled twice", arguments: sqlBackends)
    func fourProcesses(backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in try await Self.fourProcesses(store, location: location) }
    }

    static func fourProcesses<S: SQLStore>(_ store: S, location: String) async throws {
        let table = uniqueName("handled")
        try await createEffectsTable(store, table)
        let queue = try MessageQueue(store: store, name: uniqueName("shared"))
        let count = 2_000
        for chunk in stride(from: 0, to: count, by: 500) {
            try await queue.enqueue((chunk..<chunk + 500).map { message("m\($0)") })
        }
        let children = try (1...4).map { _ in
            try ChildProcess(["worker", "consume-queue", "--database", location, "--queue", queue.name, "--table", table])
        }
        var handledPerProcess: [Int] = []
        for child in children {
            #expect(await child.exitStatus() == 0, "worker output: \(child.printed)")
            let counts = try JSONDecoder().decode([String: Int].self, from: Data(child.printed.utf8))
            handledPerProcess.append(counts["handled"] ?? 0)
        }
        #expect(handledPerProcess.reduce(0, +) == count)
        #expect(handledPerProcess.filter { $0 > 0 }.count >= 2, "the work was shared: \(handledPerProcess)")
        let rows = try await store.withTransaction { tx in
            try await tx.query("SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM \(table)")
        }
        #expect(try rows[0].int64("n") == Int64(count) && rows[0].int64("d") == Int64(count))
        #expect(try await queue.depth() == QueueDepth(done: count))
    }
}

/// A PostgreSQL backend's pid, noted by one task and read by another.
private final class BackendPID: Sendable {
    let value = Mutex<SQLValue?>(nil)
}
