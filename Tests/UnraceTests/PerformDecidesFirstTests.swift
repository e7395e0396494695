import Foundation
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// `perform` decides before it runs: a duplicate never runs the body, not even to roll it back.
/// Each test counts body invocations, which a rolled-back speculative run would still raise.
@Suite("perform decides before it runs")
struct PerformDecidesFirstTests {
    @Test("a completed key performed again 10 times runs its body 0 more times", arguments: storeBackends)
    func completedKeyRunsNothing(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.completedKey(store) }
    }

    static func completedKey<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("decide"))
        let runs = Counter()
        let first = try await operations.perform(key: "k", scope: scope) { _ in runs.increment() }
        #expect(!first.isReplay)
        for _ in 0..<10 {
            let again = try await operations.perform(key: "k", scope: scope) { _ in runs.increment() }
            #expect(again.isReplay)
            #expect(again.value == 1, "the stored result, not a new run's")
        }
        #expect(runs.value == 1)
    }

    @Test("64 concurrent duplicates run the body exactly once", arguments: storeBackends)
    func concurrentDuplicatesRunOnce(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.concurrentDuplicates(store) }
    }

    static func concurrentDuplicates<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("decide"))
        let runs = Counter()
        let start = Barrier(parties: 64)
        let receipts = try await withThrowingTaskGroup(of: Receipt<Int>.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    await start.arriveAndWait()
                    return try await operations.perform(key: "capture:pay_9", scope: scope) { _ in runs.increment() }
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(runs.value == 1, "the body ran \(runs.value) times for one key")
        #expect(receipts.filter(\.isReplay).count == 63)
        #expect(Set(receipts.map(\.value)) == [1])
    }

    @Test("a body that throws 'already done' when the state shows it done is never reached by a duplicate", arguments: sqlBackends)
    func alreadyDoneBodyNeverReached(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.alreadyDone(store) }
    }

    struct AlreadyCaptured: Error {}

    static func alreadyDone<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("payments")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY, captured INTEGER NOT NULL)")
            try await tx.execute("INSERT INTO \(table) (id, captured) VALUES ('pay_1', 0)")
        }
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("decide"))
        let runs = Counter()
        /// The capture a payment service would write: refuse to capture twice.
        @Sendable func capture(_ tx: S.Transaction) async throws -> String {
            runs.increment()
            let row = try await tx.query("SELECT captured FROM \(table) WHERE id = 'pay_1'")[0]
            guard try row.int64("captured") == 0 else { throw AlreadyCaptured() }
            try await tx.execute("UPDATE \(table) SET captured = 1 WHERE id = 'pay_1'")
            return "captured pay_1"
        }
        let first = try await operations.perform(key: "capture:pay_1", scope: scope, capture)
        #expect(first.value == "captured pay_1")
        for _ in 0..<5 {
            let duplicate = try await operations.perform(key: "capture:pay_1", scope: scope, capture)
            #expect(duplicate.isReplay)
            #expect(duplicate.value == "captured pay_1")
        }
        #expect(runs.value == 1)
    }

    @Test("a duplicate waiting on a two-phase holder runs nothing while it waits", arguments: storeBackends)
    func waitingDuplicateRunsNothing(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.waitingDuplicate(store) }
    }

    static func waitingDuplicate<S: Store>(_ store: S) async throws {
        let clock = PollCountingClock()
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.waitPollInterval = .milliseconds(10)
        let operations = try Operations(store: store, configuration: configuration)
        let scope = try Scope(uniqueName("decide"))
        guard case .acquired(let handle) = try await operations.begin(key: "email:42", scope: scope) else {
            Issue.record("the first claim must acquire the key")
            return
        }
        let runs = Counter()
        let duplicate = Task {
            // A duplicate that fails (a step's error) stops the test's wait for its polls too.
            defer { clock.stopWaiting() }
            return try await operations.perform(key: "email:42", scope: scope, whenInProgress: .wait(upTo: .seconds(20))) { _ in
                runs.increment()
                return "sent by the duplicate"
            }
        }
        await clock.waitForPolls(5)  // the duplicate has found the key held five times
        #expect(runs.value == 0, "nothing runs while the duplicate waits")
        try await operations.complete(handle, result: "sent once")
        let receipt = try await duplicate.value
        #expect(receipt.isReplay)
        #expect(receipt.value == "sent once")
        #expect(runs.value == 0)
    }
}

/// A thread-safe count of body invocations.
final class Counter: Sendable {
    private let count = Mutex(0)
    @discardableResult
    func increment() -> Int {
        count.withLock {
            $0 += 1
            return $0
        }
    }
    var value: Int { count.withLock { $0 } }
}

/// A manual clock whose `sleep` counts the polls of a waiting duplicate and lets a test await a
/// number of them, instead of sleeping in real time.
final class PollCountingClock: WallClock {
    private struct State {
        var now = Timestamp(milliseconds: 1_700_000_000_000)
        var polls = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
        var stopped = false
    }

    private let state = Mutex(State())

    func now() -> Timestamp { state.withLock { $0.now } }
    var isRealTime: Bool { false }

    func sleep(for duration: Duration) async throws {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.now = state.now + duration
            state.polls += 1
            let polls = state.polls
            let ready = state.waiters.filter { $0.0 <= polls }.map(\.1)
            state.waiters.removeAll { $0.0 <= polls }
            return ready
        }
        for continuation in ready { continuation.resume() }
        await Task.yield()
    }

    /// Returns once `sleep` has been called `count` times in all, or the poller stopped.
    func waitForPolls(_ count: Int) async {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Bool in
                if state.polls >= count || state.stopped { return true }
                state.waiters.append((count, continuation))
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// The poller is done (whatever its outcome): every wait returns, now and later.
    func stopWaiting() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.stopped = true
            defer { state.waiters = [] }
            return state.waiters.map(\.1)
        }
        for continuation in waiting { continuation.resume() }
    }
}
