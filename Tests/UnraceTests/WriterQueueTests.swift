import Synchronization
import Testing
import Unrace

/// The stores with one writer per process (memory, SQLite, Fluent on SQLite) queue their write
/// steps; a queued caller that is cancelled leaves the queue at once.
@Suite("Writer queue", .timeLimit(.minutes(10)))
struct WriterQueueTests {
    @Test(
        "a step cancelled while it waits behind another step's writer ends at once with CancellationError; the queue goes on in order",
        arguments: [Backend.memory, .sqlite, .fluentSQLite]
    )
    func cancelledWaiterLeaves(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.cancelledWaiter(store) }
    }

    static func cancelledWaiter<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store)
        let holding = Latch()
        let release = Latch()
        let order = Recorder()
        let holder = Task {
            try await operations.perform(key: "holder") { _ -> Int in
                holding.open()
                await release.wait()
                return 0
            }
        }
        defer { release.open() }
        await holding.wait()
        let cancelled = Task {
            try await operations.perform(key: "cancelled") { _ -> Int in
                order.append("cancelled")
                return 1
            }
        }
        let after = Task {
            try await operations.perform(key: "after") { _ -> Int in
                order.append("after")
                return 2
            }
        }
        // Both queue behind the holder, which cannot finish: the cancelled one must end on its own.
        cancelled.cancel()
        let result = try await within(.seconds(60), "the cancelled waiter's answer, while the writer is still held") {
            await cancelled.result
        }
        guard case .failure(let error) = result else {
            Issue.record("the cancelled step ran while the writer was held")
            return
        }
        #expect(error is CancellationError, "\(error)")
        release.open()
        _ = try await holder.value
        _ = try await after.value
        #expect(order.values == ["after"])
        #expect(try await operations.status(of: "cancelled") == .notStarted)
    }
}

/// The lock itself: a queued waiter that is cancelled leaves its place; the next waiter gets the
/// lock once, in order.
@Suite("Async lock", .timeLimit(.minutes(10)))
struct AsyncLockTests {
    @Test("of two queued waiters, the cancelled one ends with CancellationError while the lock is held; the other gets it next, once")
    func cancelledQueuedWaiter() async throws {
        let lock = AsyncLock()
        let holding = Latch()
        let release = Latch()
        let order = Recorder()
        let holder = Task {
            try await lock.withLock {
                holding.open()
                await release.wait()
                order.append("holder")
            }
        }
        defer { release.open() }
        await holding.wait()
        let first = Task { try await lock.withLock { order.append("first") } }
        let second = Task { try await lock.withLock { order.append("second") } }
        try await within(.seconds(60), "both waiters queued") {
            while lock.queuedCount < 2 { await Task.yield() }
        }
        first.cancel()
        let result = try await within(.seconds(60), "the cancelled waiter's answer while the lock is held") { await first.result }
        guard case .failure(let error) = result else {
            Issue.record("the cancelled waiter got the lock while another held it")
            return
        }
        #expect(error is CancellationError)
        #expect(lock.queuedCount == 1)
        release.open()
        try await holder.value
        try await second.value
        try await lock.withLock { order.append("after") }
        #expect(order.values == ["holder", "second", "after"])
        #expect(lock.queuedCount == 0)
    }
}

/// Appends, from any task.
final class Recorder: Sendable {
    private let recorded = Mutex<[String]>([])
    func append(_ value: String) { recorded.withLock { $0.append(value) } }
    var values: [String] { recorded.withLock { $0 } }
}
