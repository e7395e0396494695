import Foundation
import Testing
import Unrace
import UnraceSQL

/// On PostgreSQL, leases are decided on the database's clock: a machine whose clock runs ahead
/// cannot take over a live lease early, however far ahead it runs.
@Suite("Leases on the database clock")
struct DatabaseClockTests {
    /// A machine's real clock that runs `offset` ahead: real time, so PostgreSQL replaces it.
    struct SkewedSystemClock: WallClock {
        var offset: Duration
        func now() -> Timestamp {
            Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down)) + offset.wholeMilliseconds)
        }
        func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
        var isRealTime: Bool { true }
    }

    @Test(
        "a process whose clock runs 5 minutes ahead cannot take over a live 30 s lease on PostgreSQL; a client-clock lease lets it",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func skewedProcessCannotTakeOver() async throws {
        try await withStore(.postgres) { store, _ in try await Self.skewedProcess(store) }
    }

    static func skewedProcess<S: SQLStore>(_ store: S) async throws {
        let ahead = SkewedSystemClock(offset: .seconds(300))
        // Naive: a lock row whose expiry each machine computes and checks on its own clock.
        let locks = uniqueName("locks")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(locks) (id TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL)")
        }
        func lock(_ holder: String, clock: any WallClock) async throws -> Bool {
            try await store.withTransaction { tx in
                let now = clock.now().milliseconds
                if let until = try await tx.query("SELECT until_ms FROM \(locks) WHERE id = 'job'").first?.optionalInt64("until_ms"),
                    until > now
                {
                    return false
                }
                try await tx.execute(
                    "INSERT INTO \(locks) (id, holder, until_ms) VALUES ('job', ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms",
                    [.text(holder), .integer(now + 30_000)]
                )
                return true
            }
        }
        #expect(try await lock("a", clock: SystemWallClock()))
        #expect(try await lock("b", clock: ahead), "the naive lease: the machine ahead takes a live lease over")

        // Guarded: the same two machines through Operations.
        let scope = try Scope(uniqueName("skew"))
        var onTime = OperationsConfiguration()
        onTime.lease = .seconds(30)
        onTime.holder = "machine-a"
        var skewed = onTime
        skewed.holder = "machine-b"
        skewed.clock = ahead
        let a = try Operations(store: store, configuration: onTime)
        let b = try Operations(store: store, configuration: skewed)
        guard case .acquired(let handle) = try await a.begin(key: "job", scope: scope) else {
            Issue.record("machine A must acquire the free key")
            return
        }
        guard case .inProgress(let holder, let until) = try await b.begin(key: "job", scope: scope) else {
            Issue.record("machine B, 5 minutes ahead, took over a live lease")
            return
        }
        #expect(holder == "machine-a")
        #expect(until == handle.leaseUntil)
        // The lease was set on the database's clock, which agrees with this machine's here.
        let local = SystemWallClock().now().milliseconds
        #expect(abs(handle.leaseUntil.milliseconds - 30_000 - local) < 60_000, "lease end from the database clock, not 5 minutes ahead")
        try await a.complete(handle, result: "done by A")
        guard case .completed(let done) = try await b.begin(key: "job", scope: scope) else {
            Issue.record("B must see the completed operation")
            return
        }
        #expect(try done.value(as: String.self) == "done by A")
    }
}
