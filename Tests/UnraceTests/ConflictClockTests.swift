import Foundation
import Testing
import Unrace

/// `WhileInProgress.conflict` answers 409 from the store's own lease decision — on PostgreSQL the
/// database's clock — however far the process's clock is off.
@Suite("Conflict mode on the store's clock", .timeLimit(.minutes(10)))
struct ConflictClockTests {
    /// PostgreSQL only: on SQLite the process's clock is the store's clock.
    @Test(
        "a process clock an hour behind: a dead holder's key is taken over at once, not answered 409 for an hour more",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func processBehind() async throws {
        try await withStore(.postgres) { store, _ in
            let behind = SystemWallClock(offset: .seconds(-3_600))
            try await gatedServer(store, .conflict, clock: behind) { client, gate in
                gate.release.open()
                // A holder that claimed the key 10 minutes ago with a 5 s lease, and died: its lease
                // ended long ago on every clock but one an hour behind.
                let past = ManualWallClock(start: SystemWallClock(offset: .seconds(-600)).now())
                #expect(try await claimAndDie(store, key: "k", principal: "everyone", lease: .seconds(5), clock: past))
                let retry = try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                #expect(retry.status == 201 && !retry.isReplay, "the store decides the lease ended: taken over")
                #expect(gate.runs == 1)
            }
        }
    }

    @Test(
        "a process clock an hour ahead: a retry during a live request gets 409 at once, instead of waiting out the handler",
        arguments: sqlBackends
    )
    func processAhead(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            let ahead = SystemWallClock(offset: .seconds(3_600))
            try await gatedServer(store, .conflict, clock: ahead) { client, gate in
                defer { gate.release.open() }  // also when the retry did not answer in time
                async let first = client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                try await within(.seconds(60), "the first request's handler") { await gate.entered.wait() }
                // The first request's handler is held: its lease is live on the store's clock.
                let during = try await within(.seconds(60), "the retry's answer while the first request runs") {
                    try await client.send(.POST, "/work", headers: [("Idempotency-Key", "k")], json: "{}")
                }
                #expect(during.status == 409 && during.problemCode == "request_in_progress")
                gate.release.open()
                #expect(try await first.status == 201)
                #expect(gate.runs == 1)
            }
        }
    }
}
