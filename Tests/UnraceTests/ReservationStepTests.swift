import MetricsTestKit
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// Releasing a resource's expired holds writes them in a few statements, not one per hold: a
/// resource with many expired holds stays usable within a step's timeout (PostgreSQL).
@Suite("Expired holds released")
struct HoldReleaseBatchTests {
    static let expiredHolds = 300

    @Test("a hold and the reaper release 300 expired holds of a resource in a handful of statements", arguments: sqlBackends)
    func releasedInBulk(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.releasedInBulk(store) }
    }

    static func releasedInBulk<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        let counting = CountingStore(inner: store)
        let reservations = Reservations(store: counting, clock: clock)
        let resource = uniqueName("r")
        try await reservations.createResource(resource, capacity: Int64(expiredHolds))
        for round in 0..<2 {
            for index in 0..<expiredHolds {
                guard case .hold = try await reservations.hold(resource, key: "\(resource)-\(round)-\(index)", timeToLive: .seconds(10))
                else {
                    Issue.record("hold \(index) was not placed")
                    return
                }
            }
            clock.advance(by: .seconds(11))
            let before = counting.sent.value
            if round == 0 {
                // Full: the expired holds must go back for this one to fit.
                guard case .hold = try await reservations.hold(resource, key: "\(resource)-new", timeToLive: .seconds(1)) else {
                    Issue.record("the new hold did not fit after the expired ones went back")
                    return
                }
                // Expired before the next round, whose first hold gives it back.
                clock.advance(by: .seconds(2))
            } else {
                #expect(try await reservations.releaseExpiredHolds(limit: 1) == expiredHolds)
            }
            let sent = counting.sent.value - before
            #expect(sent <= 12, "round \(round): \(sent) statements for \(expiredHolds) expired holds")
            for index in [0, expiredHolds - 1] {
                #expect(try await reservations.hold(key: "\(resource)-\(round)-\(index)")?.state == .released)
            }
        }
        let stored = try #require(try await reservations.resource(resource))
        #expect(stored.held == 0 && stored.confirmed == 0)
    }

    @Test(
        "a confirm or release that finds its hold expired gives the units back and counts it as released on expiry",
        arguments: storeBackends
    )
    func settledExpiredCounts(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.settledExpired(store, backend) }
    }

    static func settledExpired<S: Store>(_ store: S, _ backend: Backend) async throws {
        let metrics = TestMetrics()
        let clock = ManualWallClock()
        let reservations = Reservations(store: store, clock: clock, observability: Observability(metricsFactory: metrics))
        let resource = uniqueName("r")
        try await reservations.createResource(resource, capacity: 2)
        for key in ["a", "b"] { _ = try await reservations.hold(resource, key: "\(resource)-\(key)", timeToLive: .seconds(1)) }
        clock.advance(by: .seconds(2))
        guard case .notLive = try await reservations.confirm(key: "\(resource)-a"),
            case .notLive = try await reservations.release(key: "\(resource)-b")
        else {
            Issue.record("an expired hold was settled")
            return
        }
        // Settled again: nothing more goes back.
        _ = try await reservations.release(key: "\(resource)-a")
        #expect(try await reservations.resource(resource)?.held == 0)
        let released = try metrics.expectCounter("unrace_holds_released_total", [("store", backend.label), ("cause", "expired")])
        #expect(released.totalValue == 2)
    }
}

/// Lock order across resources: a hold asked under a key another resource's hold uses is refused
/// without waiting on that hold's row, which that resource's own steps lock after the resource.
@Suite("Hold lock order", .timeLimit(.minutes(10)))
struct HoldLockOrderTests {
    @Test(
        "a reused hold key is refused while another transaction holds that hold's row: no wait, so no cycle with its resource's reaper",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func reusedKeyDoesNotWait() async throws {
        try await withStore(.postgres) { store, _ in try await Self.reusedKeyDoesNotWait(store) }
    }

    static func reusedKeyDoesNotWait<S: SQLStore>(_ store: S) async throws {
        let reservations = Reservations(store: store)
        let (first, second, key) = (uniqueName("r1"), uniqueName("r2"), uniqueName("k"))
        try await reservations.createResource(first, capacity: 1)
        try await reservations.createResource(second, capacity: 1)
        _ = try await reservations.hold(first, key: key, timeToLive: .seconds(60))
        let held = Latch()
        let release = Latch()
        // What the first resource's reaper holds mid-step: the hold's row.
        let holder = Task {
            try await store.withTransaction { tx in
                _ = try await tx.query("SELECT key FROM unrace_holds WHERE key = ? FOR UPDATE", [.text(key)])
                held.open()
                await release.wait()
            }
        }
        defer { release.open() }
        await held.wait()
        let refused = try await within(.seconds(60), "the reused key refused without waiting on the hold's row") {
            do {
                _ = try await reservations.hold(second, key: key, timeToLive: .seconds(60))
                return nil as UnraceError?
            } catch let error as UnraceError {
                return error
            }
        }
        #expect(refused?.code == .holdKeyReused, "\(String(describing: refused))")
        release.open()
        try await holder.value
        #expect(try await reservations.resource(second)?.held == 0)
    }
}
