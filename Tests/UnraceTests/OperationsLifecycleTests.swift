import Foundation
import Testing
import Unrace
import UnraceSQL
import UnraceSQLite

/// Leases, fencing, outcomes, status and retention, on every real backend.
@Suite("Operations lifecycle")
struct OperationsLifecycleTests {
    struct Boom: Error {}

    static func operations<S: Store>(_ store: S, clock: ManualWallClock, lease: Duration = .seconds(10)) throws -> Operations<S> {
        var configuration = OperationsConfiguration()
        configuration.lease = lease
        configuration.retention = .seconds(3_600)
        configuration.clock = clock
        return try Operations(store: store, configuration: configuration)
    }

    @Test("zombie: a holder whose lease was taken over is fenced and its local write rolls back", arguments: sqlBackends)
    func zombieIsFenced(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.zombie(store) }
    }

    static func zombie<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("shipments")
        try await createEffectsTable(store, table)
        let clock = ManualWallClock()
        var configA = OperationsConfiguration()
        configA.lease = .seconds(10)
        configA.clock = clock
        configA.holder = "worker-a"
        var configB = configA
        configB.holder = "worker-b"
        let a = try Operations(store: store, configuration: configA)
        let b = try Operations(store: store, configuration: configB)
        let scope = try Scope(uniqueName("ship"))

        guard case .acquired(let handleA) = try await a.begin(key: "ship:order_1", scope: scope) else {
            Issue.record("A should acquire a fresh key")
            return
        }
        #expect(handleA.token == .first)
        guard case .inProgress(let holder, _) = try await b.begin(key: "ship:order_1", scope: scope) else {
            Issue.record("B must not acquire while A's lease runs")
            return
        }
        #expect(holder == "worker-a")

        clock.advance(by: .seconds(11))  // A pauses (GC, a stalled VM) past its lease
        guard case .acquired(let handleB) = try await b.begin(key: "ship:order_1", scope: scope) else {
            Issue.record("B should take over after A's lease ended")
            return
        }
        #expect(handleB.token == FencingToken(2))
        #expect(handleB.isTakeover)
        #expect(handleB.derivedKey("carrier") == handleA.derivedKey("carrier"), "downstream key survives takeover")
        try await b.complete(handleB, result: "shipped-by-b") { tx in
            try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('order_1', 'b', 2)")
        }

        // A wakes up and tries to finish its work.
        let error = await #expect(throws: UnraceError.self) {
            try await a.complete(handleA, result: "shipped-by-a") { tx in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('order_1', 'a', 1)")
            }
        }
        #expect(error?.code == .fenced)
        let checkpointError = await #expect(throws: UnraceError.self) {
            try await a.checkpoint(handleA, recoveryPoint: "step-2")
        }
        #expect(checkpointError?.code == .fenced)
        #expect(try await countRows(store, table, id: "order_1") == 1)
        let rows = try await store.withTransaction { tx in try await tx.query("SELECT worker FROM \(table)") }
        #expect(rows.map { $0["worker"] } == ["b"], "A's local write is absent")
        guard case .completed(let done) = try await a.status(of: "ship:order_1", scope: scope) else {
            Issue.record("the operation should be completed")
            return
        }
        #expect(try done.value(as: String.self) == "shipped-by-b")
    }

    @Test("the unfenced baseline: without a token check the zombie's write lands", arguments: sqlBackends)
    func unfencedZombieWrites(backend: SQLBackend) async throws {
        // The same interleaving with a naive "lease" that trusts the holder's own belief that it
        // still owns the key: both writes land.
        try await withStore(backend) { store, _ in try await Self.unfencedZombieWritesScenario(store) }
    }

    @Test("a terminal failure is replayed; a retryable one releases the key with its recovery point", arguments: sqlBackends)
    func failures(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.failuresScenario(store) }
    }

    @Test("a fingerprint mismatch is refused and the stored record is unchanged", arguments: sqlBackends)
    func fingerprintMismatch(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.fingerprintMismatchScenario(store) }
    }

    @Test("a body that throws writes nothing and leaves the key free", arguments: sqlBackends)
    func bodyThrows(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.bodyThrowsScenario(store) }
    }

    @Test("a duplicate fails fast, waits with a bound, or gets the holder's outcome", arguments: sqlBackends)
    func inProgressPolicies(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.inProgressPoliciesScenario(store) }
    }

    @Test("a waiting duplicate receives the holder's outcome when it completes", arguments: sqlBackends)
    func waiterReceivesOutcome(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.waiterReceivesOutcomeScenario(store) }
    }

    @Test("completed keys are purged after retention, in bounded batches", arguments: sqlBackends)
    func retention(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.retentionScenario(store) }
    }

    @Test("the SQLite writer really runs with synchronous = FULL, and NORMAL only when asked")
    func sqliteDurability() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-durability"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let full = try await SQLiteStore(path: folder.appendingPathComponent("full.sqlite").path)
        #expect(try await full.writerSynchronousSetting() == 2)
        var configuration = SQLiteStore.Configuration()
        configuration.durability = .normal
        let normal = try await SQLiteStore(path: folder.appendingPathComponent("normal.sqlite").path, configuration: configuration)
        #expect(try await normal.writerSynchronousSetting() == 1)
    }

    @Test("upgrading: a running record written before expiries existed gets one, so it can be purged")
    func upgradeFillsExpiry() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-upgrade"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("db.sqlite").path
        let old = try await SQLiteStore(path: path)
        _ = try await old.withTransaction { tx in
            try await tx.execute(
                """
                INSERT INTO unrace_operations (scope, key, fingerprint, state, token, holder, lease_until, created_at)
                VALUES ('default', 'abandoned', x'', 'running', 1, 'gone', 1000, 0)
                """
            )
            try await tx.execute("DELETE FROM unrace_schema_migrations WHERE version = 6")
        }
        let upgraded = try await SQLiteStore(path: path)
        let record = try #require(try await upgraded.record(scope: .default, key: OperationKey("abandoned")))
        #expect(record.expiresAt == Timestamp(milliseconds: 1000 + 86_400_000))
        var configuration = OperationsConfiguration()
        configuration.clock = ManualWallClock(start: Timestamp(milliseconds: 1000 + 86_400_000))
        #expect(try await Operations(store: upgraded, configuration: configuration).purgeExpired() == 1)
    }

    @Test("migrations are idempotent and a newer schema is refused")
    func migrations() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-schema"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("db.sqlite").path
        let first = try await SQLiteStore(path: path)
        _ = try await SQLiteStore(path: path)  // opening again applies nothing and does not fail
        _ = try await first.withTransaction { tx in
            try await tx.execute("INSERT INTO unrace_schema_migrations (version, applied_at) VALUES (999, 0)")
        }
        let error = await #expect(throws: UnraceError.self) { try await SQLiteStore(path: path) }
        #expect(error?.code == .schemaTooNew)
    }

    /// The same interleaving as the fenced scenario, with the naive lease people write first: a
    /// lock row with an expiry, checked when the work starts and trusted when it ends. A pauses
    /// past its lease, B takes the expired lock and ships, A wakes up and ships too.
    static func unfencedZombieWritesScenario<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("shipments")
        let locks = uniqueName("locks")
        try await createEffectsTable(store, table)
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(locks) (id TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL)")
        }
        let clock = ManualWallClock()
        /// Takes the lock if it is free or expired; returns whether this worker got it.
        func lock(_ worker: String) async throws -> Bool {
            try await store.withTransaction { tx in
                let now = clock.now().milliseconds
                let row = try await tx.query("SELECT until_ms FROM \(locks) WHERE id = 'order_1'").first
                if let until = row?.optionalInt64("until_ms"), until > now { return false }
                try await tx.execute(
                    "INSERT INTO \(locks) (id, holder, until_ms) VALUES ('order_1', ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms",
                    [.text(worker), .integer(now + 10_000)]
                )
                return true
            }
        }
        func ship(_ worker: String, _ seq: Int64) async throws {
            _ = try await store.withTransaction { tx in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('order_1', ?, ?)", [.text(worker), .integer(seq)])
            }
        }
        #expect(try await lock("a"))
        #expect(try await !lock("b"), "B waits while A's lease runs")
        clock.advance(by: .seconds(11))  // A pauses past its lease
        #expect(try await lock("b"))
        try await ship("b", 2)
        try await ship("a", 1)  // A still believes it holds the lock: nothing checks a token
        #expect(try await countRows(store, table, id: "order_1") == 2, "the zombie's write landed beside the new holder's")
    }

    static func failuresScenario<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        let operations = try Self.operations(store, clock: clock)
        let scope = try Scope(uniqueName("cards"))

        guard case .acquired(let first) = try await operations.begin(key: "charge:1", scope: scope) else {
            Issue.record("first claim")
            return
        }
        clock.advance(by: .seconds(4))
        let resumed = try await operations.checkpoint(first, recoveryPoint: ["step": 2])
        #expect(resumed.leaseUntil == first.leaseUntil + .seconds(4), "a checkpoint extends the lease from its own time")
        try await operations.fail(resumed, reason: .retryable)
        #expect(try await operations.status(of: "charge:1", scope: scope) == .released)

        guard case .acquired(let second) = try await operations.begin(key: "charge:1", scope: scope) else {
            Issue.record("a released key is acquired again")
            return
        }
        #expect(second.token == FencingToken(2))
        #expect(try second.recoveryPoint(as: [String: Int].self) == ["step": 2])
        try await operations.fail(second, reason: .terminal("card declined"))

        guard case .completed(let done) = try await operations.begin(key: "charge:1", scope: scope) else {
            Issue.record("a terminal failure is replayed")
            return
        }
        #expect(done.isFailure)
        #expect(done.failureReason == "card declined")
        let error = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "charge:1", scope: scope) { _ in 1 }
        }
        #expect(error?.code == .operationFailed)
    }

    static func fingerprintMismatchScenario<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("coupons")
        try await createEffectsTable(store, table)
        let operations = try Self.operations(store, clock: ManualWallClock())
        let scope = try Scope(uniqueName("coupons"))
        let original = try Fingerprint.json(["coupon": "SAVE10", "user": "u1"])
        _ = try await operations.perform(key: "redeem:u1", scope: scope, fingerprint: original) { tx in
            try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('u1', 'w', 0)")
            return "ok"
        }
        let before = try await store.record(scope: scope, key: OperationKey("redeem:u1"))
        let other = try Fingerprint.json(["coupon": "SAVE50", "user": "u1"])
        let error = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "redeem:u1", scope: scope, fingerprint: other) { tx in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('u1', 'w', 1)")
                return "ok"
            }
        }
        #expect(error?.code == .fingerprintMismatch)
        #expect(try await operations.begin(key: "redeem:u1", scope: scope, fingerprint: other) == .fingerprintMismatch)
        #expect(try await store.record(scope: scope, key: OperationKey("redeem:u1")) == before)
        #expect(try await countRows(store, table) == 1)
        // The same request (keys in another order) is a replay, not a mismatch.
        let same = try Fingerprint.json(["user": "u1", "coupon": "SAVE10"])
        let replay = try await operations.perform(key: "redeem:u1", scope: scope, fingerprint: same) { _ in "again" }
        #expect(replay.isReplay && replay.value == "ok")
    }

    static func bodyThrowsScenario<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("emails")
        try await createEffectsTable(store, table)
        let operations = try Self.operations(store, clock: ManualWallClock())
        let scope = try Scope(uniqueName("email"))
        await #expect(throws: Boom.self) {
            try await operations.perform(key: "welcome:u1", scope: scope) { tx -> Int in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('u1', 'w', 0)")
                throw Boom()
            }
        }
        #expect(try await countRows(store, table) == 0)
        #expect(try await operations.status(of: "welcome:u1", scope: scope) == .notStarted)
        let receipt = try await operations.perform(key: "welcome:u1", scope: scope) { _ in 7 }
        #expect(!receipt.isReplay && receipt.value == 7)
    }

    static func inProgressPoliciesScenario<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        let operations = try Self.operations(store, clock: clock, lease: .seconds(60))
        let scope = try Scope(uniqueName("stock"))
        guard case .acquired(let holder) = try await operations.begin(key: "reserve:sku1", scope: scope) else {
            Issue.record("first claim")
            return
        }
        let fast = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "reserve:sku1", scope: scope, whenInProgress: .failFast) { _ in 0 }
        }
        #expect(fast?.code == .inProgress)
        // The manual clock moves on every poll, so this bounded wait ends without real time passing.
        let timedOut = await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "reserve:sku1", scope: scope, whenInProgress: .wait(upTo: .seconds(1))) { _ in 0 }
        }
        #expect(timedOut?.code == .waitTimedOut)

        try await operations.complete(holder, result: 42)
        let replay = try await operations.perform(key: "reserve:sku1", scope: scope, whenInProgress: .failFast) { _ in 0 }
        #expect(replay.isReplay && replay.value == 42)
    }

    static func waiterReceivesOutcomeScenario<S: SQLStore>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(60), retention: .seconds(60))
        let scope = try Scope(uniqueName("stock"))
        guard case .acquired(let holder) = try await operations.begin(key: "reserve:sku2", scope: scope) else {
            Issue.record("first claim")
            return
        }
        async let waited = operations.perform(key: "reserve:sku2", scope: scope, whenInProgress: .wait(upTo: .seconds(60))) { _ in -1 }
        try await operations.complete(holder, result: 99)
        let receipt = try await waited
        #expect(receipt.isReplay && receipt.value == 99)
    }

    static func retentionScenario<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.retention = .seconds(60)
        configuration.clock = clock
        let operations = try Operations(store: store, configuration: configuration)
        let scope = try Scope(uniqueName("mail"))
        for index in 0..<5 {
            _ = try await operations.perform(key: "send:\(index)", scope: scope) { _ in index }
        }
        guard case .acquired = try await operations.begin(key: "running", scope: scope) else {
            Issue.record("claim")
            return
        }
        #expect(try await operations.purgeExpired(scope: scope, limit: 10) == 0, "nothing expires before its retention")
        clock.advance(by: .seconds(61))
        #expect(try await operations.purgeExpired(scope: scope, limit: 2) == 2)
        #expect(try await operations.purgeExpired(scope: scope, limit: 10) == 3)
        #expect(try await operations.status(of: "send:0", scope: scope) == .notStarted)
        #expect(try await operations.status(of: "running", scope: scope) != .notStarted, "running keys are never purged")
    }
}
