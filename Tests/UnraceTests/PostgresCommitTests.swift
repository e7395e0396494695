import Foundation
import Logging
import PostgresNIO
import Synchronization
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceShop

/// A COMMIT the client lost: the caller gets outcome_unknown, never "nothing was committed", because
/// the server may still finish it.
extension PostgresLivenessTests {
    /// A table whose inserts make `COMMIT` itself wait (a deferred constraint trigger takes an
    /// advisory lock) for as long as `body` runs: `body` gets the table with the lock held by a
    /// step of `store`'s own, which lets go when `body` returns. A COMMIT held by the test, not
    /// one that sleeps a fixed time: on a loaded machine a 6 s COMMIT could end before the test
    /// had seen it start.
    static func withHeldCommits(_ store: PostgresStore, _ body: () async throws -> Void) async throws {
        let lock = Int64.random(in: 1...Int64.max)
        try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE slow_commits (id TEXT PRIMARY KEY)")
            try await tx.execute(
                "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_xact_lock_shared(\(lock)); RETURN NULL; END $$"
            )
            try await tx.execute(
                "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_commits DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()"
            )
        }
        let held = Latch()
        let release = Latch()
        let holder = Task {
            try await store.withTransaction { tx in
                try await tx.execute("SELECT pg_advisory_xact_lock(\(lock))")
                held.open()
                await release.wait()
            }
        }
        try await within(.seconds(60), "the test's lock held") { await held.wait() }
        do {
            try await body()
        } catch {
            release.open()
            _ = await holder.result
            throw error
        }
        release.open()
        try await holder.value
    }

    /// Waits until the backend whose pid `backend` returns is running `COMMIT`, blocked on the lock
    /// ``withHeldCommits(_:_:)`` holds.
    static func commitWaiting(_ store: PostgresStore, backend: @escaping @Sendable () -> SQLValue?) async throws {
        try await within(.seconds(60), "the step's COMMIT running on the server") {
            while true {
                if let pid = backend(),
                    try await store.withTransaction({ tx in
                        try await tx.query(
                            "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ? AND state = 'active' AND query = 'COMMIT' AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                            [pid]
                        )
                    }).first?["n"] == .integer(1)
                {
                    return
                }
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test(
        "a caller cancelled while its COMMIT runs on the server gets outcome_unknown, not CancellationError — and, with the connection check off, the server commits",
        arguments: [false, true]
    )
    func cancelledDuringCommit(checksConnection: Bool) async throws {
        // With the connection check on (the default), the server may abort this COMMIT (blocked
        // in a trigger) once the client left; one past its commit record completes regardless.
        // Either way the caller cannot know, which is what outcome_unknown says; with the check
        // off, the server's COMMIT is seen to complete.
        try await Self.withPostgres(checksConnection: checksConnection) { store in
            try await Self.withHeldCommits(store) {
                let backend = Mutex<SQLValue?>(nil)
                let step = Task {
                    try await store.withTransaction { tx in
                        try await tx.execute("INSERT INTO slow_commits (id) VALUES ('a')")
                        let pid = try await tx.query("SELECT pg_backend_pid() AS pid").first?["pid"]
                        backend.withLock { $0 = pid }
                    }
                }
                // Cancel while this step's own backend runs its COMMIT (held until the lock goes).
                try await Self.commitWaiting(store) { backend.withLock { $0 } }
                let cancelled = ContinuousClock.now
                step.cancel()
                let result = await step.result
                // At once, not when the COMMIT (held by the test) or the step timeout ends.
                #expect(ContinuousClock.now - cancelled < .seconds(10))
                let outcome: String
                switch result {
                case .success: outcome = "committed"
                case .failure(let error as UnraceError): outcome = "\(error.code)\(error.isRetryable ? " retryable" : "")"
                case .failure(let error): outcome = "\(type(of: error))"
                }
                #expect(outcome == "outcome_unknown retryable")
            }
            guard !checksConnection else { return }
            // The lock is gone: the server finishes the COMMIT it was given.
            let committed = try await within(.seconds(60), "the server's COMMIT") {
                while try await countRows(store, "slow_commits") == 0 { try await Task.sleep(for: .milliseconds(100)) }
                return true
            }
            #expect(committed)
        }
    }

    @Test(
        "a step whose COMMIT is still running at its timeout is outcome_unknown, never 'nothing was committed' — and the server did commit (connection check off)"
    )
    func commitInFlightAtTimeout() async throws {
        // As in cancelledDuringCommit, a COMMIT the server completes after its client left.
        try await Self.withPostgres(stepTimeout: .seconds(3), checksConnection: false) { store, setUp in
            try await Self.withHeldCommits(setUp) {
                let code = try await within(.seconds(60), "a step whose COMMIT outlasts its timeout") {
                    do {
                        try await store.withTransaction { tx in try await tx.execute("INSERT INTO slow_commits (id) VALUES ('a')") }
                        return "committed"
                    } catch let error as UnraceError { return "\(error.code)\(error.isRetryable ? " retryable" : "")" }
                }
                #expect(code == "outcome_unknown retryable")
            }
            // The server finishes the COMMIT it was given: telling the caller that nothing was
            // committed would have been false.
            let committed = try await within(.seconds(60), "the server's COMMIT") {
                while try await countRows(setUp, "slow_commits") == 0 { try await Task.sleep(for: .milliseconds(100)) }
                return true
            }
            #expect(committed)
        }
    }
}
