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
        leases.noteLease()  // another step holds the pool's connection
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
        let failed = try await within(.seconds(60), "a wait with nothing held failed") {
            do {
                _ = try await alone.borrow()
                return nil as UnraceError?
            } catch let error as UnraceError {
                return error
            }
        }
        #expect(failed?.code == .storeUnavailable)
    }

    @Test(
        "a step behind the pool's one connection, held longer than connectionWaitMaximum, runs once it is given back",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func waitsBehindALongHolder() async throws {
        try await withStore(.postgres) { _, location in
            try await PostgresStore.withStore(url: location, maximumConnections: 1) { store in
                let held = Latch()
                let holder = Task {
                    try await store.withTransaction { tx in
                        _ = try await tx.query("SELECT 1 AS n")
                        held.open()
                        // Held past the period (and within the 30 s step timeout).
                        try await Task.sleep(for: PostgresStore.connectionWaitMaximum + .seconds(2))
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
}
