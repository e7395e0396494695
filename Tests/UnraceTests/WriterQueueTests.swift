import Synchronization
import Testing
import Unrace

/// The stores with one writer per process (memory, SQLite, Fluent on SQLite) queue their write
/// steps; a queued caller that is cancelled leaves the queue at once.
@Suite("Writer queue", .timeLimit(.minutes(2)))
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
        let result = try await within(.seconds(10), "the cancelled waiter's answer, while the writer is still held") {
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

/// Appends, from any task.
final class Recorder: Sendable {
    private let recorded = Mutex<[String]>([])
    func append(_ value: String) { recorded.withLock { $0.append(value) } }
    var values: [String] { recorded.withLock { $0 } }
}
