import FluentKit
import FluentSQLiteDriver
import Foundation
import NIOCore
import NIOPosix
import Testing
import Unrace
import UnraceFluent

@testable import UnraceSQLite

/// Two `SQLiteStore`s on one file are two connections, as two processes are: a step of one waits
/// in `BEGIN IMMEDIATE` while the other holds the file's write lock.
@Suite("SQLite stores sharing a file", .timeLimit(.minutes(10)))
struct SQLiteSharedFileTests {
    /// Two stores on a new file, the second waiting at most `busyTimeout` for the first's lock.
    static func withTwoStores(busyTimeout: Duration, _ body: (SQLiteStore, SQLiteStore) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("shared-file"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("shared.sqlite").path
        var configuration = SQLiteStore.Configuration()
        configuration.busyTimeout = busyTimeout
        let first = try await SQLiteStore(path: path)
        let second = try await SQLiteStore(path: path, configuration: configuration)
        try await body(first, second)
    }

    /// Holds `store`'s write lock on the file (a write in an open transaction) until `release` opens.
    static func holdWriteLock(_ store: SQLiteStore, release: Latch) async -> Task<Void, any Error> {
        let held = Latch()
        let holder = Task {
            defer { held.open() }
            try await store.withTransaction { tx in
                try await tx.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)", [])
                held.open()
                await release.wait()
            }
        }
        await held.wait()
        return holder
    }

    @Test(
        "a caller cancelled while its step waits for the other store's write lock gets CancellationError at once, not store_unavailable after busyTimeout"
    )
    func cancelledWhileBusy() async throws {
        try await Self.withTwoStores(busyTimeout: .seconds(20)) { first, second in
            let release = Latch()
            let holder = await Self.holdWriteLock(first, release: release)
            defer { release.open() }
            let operations = try Operations(store: second)
            let waiting = Task { try await operations.perform(key: "k") { _ in 1 } }
            // The step waits in BEGIN IMMEDIATE: the writer's busy handler has been called.
            try await within(.seconds(60), "the step waiting for the other store's lock") {
                while second.writerCancelled.busyCalls == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            let cancelled = ContinuousClock.now
            waiting.cancel()
            let result = await waiting.result
            let took = ContinuousClock.now - cancelled
            #expect(took < .seconds(5), "the cancelled step answered after \(took)")
            guard case .failure(let error) = result else {
                Issue.record("the cancelled perform ran")
                return
            }
            #expect(error is CancellationError, "\(error)")
            release.open()
            try await holder.value
            // The writer is free again: the next step goes through.
            #expect(try await operations.perform(key: "k") { _ in 2 }.value == 2)
        }
    }

    @Test("a begin that waited in BEGIN IMMEDIATE longer than its lease decides at the time its wait ended: a whole lease from then")
    func timeReadAfterTheWait() async throws {
        try await Self.withTwoStores(busyTimeout: .seconds(20)) { first, second in
            let release = Latch()
            let holder = await Self.holdWriteLock(first, release: release)
            defer { release.open() }
            let operations = try Operations(store: second, lease: .seconds(1), retention: .seconds(60))
            let waiting = Task { try await operations.begin(key: "k") }
            try await within(.seconds(60), "the begin waiting for the other store's lock") {
                while second.writerCancelled.busyCalls == 0 { try await Task.sleep(for: .milliseconds(5)) }
            }
            // Longer than the lease passes while the begin waits for the lock (the time itself is
            // what is tested).
            try await Task.sleep(for: .milliseconds(1_500))
            let released = SystemWallClock().now()
            release.open()
            try await holder.value
            guard case .acquired(let handle) = try await waiting.value else {
                Issue.record("the begin did not acquire a free key")
                return
            }
            // Decided once it held the lock, after `released`: a full lease from then.
            #expect(handle.leaseUntil >= released + .seconds(1), "lease until \(handle.leaseUntil), lock released at \(released)")
        }
    }

    @Test(
        "Fluent on SQLite: a caller cancelled while its step waits for another connection's write lock gets CancellationError, not store_unavailable"
    )
    func fluentCancelledWhileBusy() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("shared-fluent"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("shared.sqlite").path
        func databases() -> Databases {
            let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
            databases.use(.sqlite(.file(path), maxConnectionsPerEventLoop: 1, connectionPoolTimeout: .seconds(60)), as: .sqlite)
            return databases
        }
        let (one, other) = (databases(), databases())
        do {
            let first = try await FluentStore(databases: one)
            // Its statements wait for the other connection's lock at most 3 s (busy_timeout).
            let second = try await FluentStore(databases: other, stepTimeout: .seconds(3))
            let held = Latch()
            let release = Latch()
            let holder = Task {
                defer { held.open() }
                try await first.withTransaction { tx in
                    try await tx.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)", [])
                    held.open()
                    await release.wait()
                }
            }
            defer { release.open() }
            await held.wait()
            let waiting = Task { try await Operations(store: second).perform(key: "k") { _ in 1 } }
            // Time for the step to reach BEGIN IMMEDIATE (SQLiteNIO shows no waiter; a cancellation
            // that lands earlier ends the step at once, and proves nothing).
            try await Task.sleep(for: .milliseconds(300))
            waiting.cancel()
            guard case .failure(let error) = await waiting.result else {
                Issue.record("the cancelled perform ran")
                return
            }
            #expect(error is CancellationError, "\(error)")
            release.open()
            try await holder.value
        } catch {
            await one.shutdownAsync()
            await other.shutdownAsync()
            throw error
        }
        await one.shutdownAsync()
        await other.shutdownAsync()
    }
}
