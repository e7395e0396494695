import Testing
import Unrace
import UnraceCore

@testable import UnracePostgres

/// A step waiting for a pooled connection behind steps that hold every connection waits on, however
/// long they hold them (each within its step timeout): ``PostgresStore/connectionWaitMaximum``
/// counts only while no step holds a connection, from the pool's last lending or return.
@Suite("PostgreSQL: waiting behind held connections", .timeLimit(.minutes(10)))
struct PostgresPoolWaitTests {
    @Test("the wait's watch does not fire while a step holds a connection; once it is given back and a period passes, it does")
    func watchWaitsBehindAHolder() async throws {
        let leases = LastLease()
        leases.noteLease(heldAtMost: .seconds(600))  // another step holds the pool's connection
        let behind = Loan<Int>()
        let watch = LeaseWatch(loan: behind, leases: leases, every: .milliseconds(100))
        let borrower = Task { try await behind.borrow() }
        // Ten periods pass with the connection held: the passing of time is what is tested.
        try await Task.sleep(for: .seconds(1))
        let lender = Task { await behind.lend(7) }
        #expect(try await borrower.value == 7, "the waiter behind a holder was failed")
        watch.stop()
        behind.giveBack()
        await lender.value

        // Every connection back and none lent: a wait now is failed after a period.
        leases.noteReturn()
        #expect(leases.holders == 0)
        let alone = Loan<Int>()
        let second = LeaseWatch(loan: alone, leases: leases, every: .milliseconds(100))
        defer { second.stop() }
        #expect(try await Self.failure(of: alone, "a wait with nothing held failed")?.code == .storeUnavailable)
    }

    /// A store on the test schema at `location` with `connections` pooled connections, whose wait
    /// for one is 10 s (``PostgresStore/connectionWaitMaximum``): its URL's connect timeout is 9 s.
    static func withWaitStore(
        _ location: String,
        connections: Int,
        stepTimeout: Duration,
        _ body: (PostgresStore) async throws -> Void
    ) async throws {
        try await PostgresStore.withStore(
            url: TestPostgres.url(location, connectTimeout: 9),
            maximumConnections: connections,
            stepTimeout: stepTimeout,
            body
        )
    }

    /// How a wait for `loan` ended: the watch's error, or `nil` if it was lent.
    static func failure(of loan: Loan<Int>, _ what: String) async throws -> UnraceError? {
        try await within(.seconds(60), what) {
            do {
                _ = try await loan.borrow()
                return nil
            } catch let error as UnraceError {
                return error
            }
        }
    }

    @Test("a holder is counted for its hold's bound at most: a step whose body outlives its timeout does not keep waiters waiting for good")
    func holdPastItsBound() async throws {
        let leases = LastLease()
        leases.noteLease(heldAtMost: .milliseconds(500))  // never given back
        let behind = Loan<Int>()
        let started = ContinuousClock.now
        let watch = LeaseWatch(loan: behind, leases: leases, every: .milliseconds(100))
        defer { watch.stop() }
        #expect(try await Self.failure(of: behind, "a wait behind a hold past its bound failed")?.code == .storeUnavailable)
        #expect(ContinuousClock.now - started >= .milliseconds(500), "it waited while the hold was within its bound")
        #expect(leases.holders == 1)
    }

    @Test(
        "a step behind the pool's one connection, held longer than connectionWaitMaximum, runs once it is given back",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func waitsBehindALongHolder() async throws {
        try await withStore(.postgres) { _, location in
            try await Self.withWaitStore(location, connections: 1, stepTimeout: .seconds(120)) { store in
                let held = Latch()
                let holder = Task {
                    try await store.withTransaction { tx in
                        _ = try await tx.query("SELECT 1 AS n")
                        held.open()
                        // Held past the period, with room for a slow test task (and within the
                        // step timeout).
                        try await Task.sleep(for: store.connectionWait + .seconds(10))
                    }
                }
                await held.wait()
                let started = ContinuousClock.now
                let value = try await store.withTransaction { tx in try await tx.query("SELECT 2 AS n")[0].int64("n") }
                #expect(value == 2)
                #expect(ContinuousClock.now - started >= PostgresStore.connectionWaitMaximum, "it waited behind the holder")
                try await holder.value
            }
        }
    }

    @Test(
        "every way a step ends gives its connection back to the count: after a step that succeeds, throws, is cancelled or times out, no step holds one",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func holdersReturnToZero() async throws {
        struct Thrown: Error {}
        try await withStore(.postgres) { _, location in
            // A step timeout no loaded machine reaches, but for the step that must reach it (on a
            // store of its own, below).
            try await Self.withWaitStore(location, connections: 2, stepTimeout: .seconds(300)) { store in
                _ = try await store.withTransaction { tx in try await tx.query("SELECT 1 AS n") }
                await #expect(throws: Thrown.self) {
                    try await store.withTransaction { tx in
                        _ = try await tx.query("SELECT 1 AS n")
                        throw Thrown()
                    }
                }
                let running = Latch()
                let cancelled = Task {
                    try await store.withTransaction { tx in
                        running.open()
                        _ = try await tx.query("SELECT pg_sleep(30)")
                    }
                }
                await running.wait()
                cancelled.cancel()
                _ = await cancelled.result
                #expect(store.leases.holders == 0)
            }
            try await Self.withWaitStore(location, connections: 2, stepTimeout: .seconds(1)) { store in
                let timedOut = await QueueTests.code {
                    try await store.withTransaction { tx in _ = try await tx.query("SELECT pg_sleep(5)") }
                }
                #expect(timedOut == "store_unavailable")
                #expect(store.leases.holders == 0)
            }
        }
    }

    @Test(
        "a step behind a holder whose body outlives its step timeout is answered within that hold's bound and a period, never left waiting",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func waitsBoundedBehindAnOverrunningBody() async throws {
        try await withStore(.postgres) { _, location in
            // 5 s: a loaded machine finishes the holder's first statement within it.
            try await Self.withWaitStore(location, connections: 1, stepTimeout: .seconds(5)) { store in
                let held = Latch()
                let holding = Latch()
                let release = Latch()
                defer { release.open() }
                // The body goes on, outside the database, long past its step's timeout.
                let holder = Task {
                    defer { held.open() }  // also when its first statement failed
                    try await store.withTransaction { tx in
                        _ = try await tx.query("SELECT 1 AS n")
                        holding.open()
                        held.open()
                        await release.wait()
                    }
                }
                await held.wait()
                guard holding.isOpen else {
                    Issue.record("the holder's first statement failed: \(await holder.result)")
                    return
                }
                let started = ContinuousClock.now
                let answered = try await within(.seconds(90), "the step behind the overrunning body") {
                    await QueueTests.code { try await store.withTransaction { tx in _ = try await tx.query("SELECT 1 AS n") } }
                }
                let waited = ContinuousClock.now - started
                // Its connection closed at the holder's timeout: the pool may open another (the
                // step runs) or not (the step fails once the hold's bound and a period passed).
                #expect(answered == nil || answered == "store_unavailable", "\(String(describing: answered))")
                #expect(waited < store.holdMaximum + store.connectionWait + .seconds(15), "waited \(waited)")
                release.open()
                _ = await holder.result
            }
        }
    }
}
