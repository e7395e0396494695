import Foundation
import Testing
import Unrace
import UnraceSQL

/// Many OS processes on one database, and a process killed mid-operation.
@Suite("Operations across processes")
struct ProcessTests {
    @Test("4 processes perform the same 1,000 keys: every business row exactly once", arguments: sqlBackends)
    func fourProcesses(backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in try await Self.fourProcesses(store, location: location) }
    }

    static func fourProcesses<S: SQLStore>(_ store: S, location: String) async throws {
        let table = uniqueName("effects")
        try await createEffectsTable(store, table)
        let scope = uniqueName("multi")
        let keys = 1_000
        let children = try (1...4).map { seed in
            try ChildProcess([
                "worker", "perform-keys", "--database", location, "--scope", scope, "--table", table,
                "--keys", "\(keys)", "--seed", "\(seed)",
            ])
        }
        var performed = 0
        var replayed = 0
        for child in children {
            #expect(await child.exitStatus() == 0, "worker output: \(child.printed)")
            let data = Data(child.printed.utf8)
            let counts = try JSONDecoder().decode([String: Int].self, from: data)
            performed += counts["performed"] ?? 0
            replayed += counts["replayed"] ?? 0
        }
        #expect(performed == keys, "each key performed by exactly one process")
        #expect(replayed == keys * 3)
        #expect(try await countRows(store, table) == keys)
        let distinct = try await store.withTransaction { tx in
            try await tx.query("SELECT COUNT(DISTINCT id) AS n FROM \(table)")
        }
        #expect(try distinct[0].int64("n") == Int64(keys))
    }

    @Test("a holder killed with SIGKILL mid-operation is taken over after its lease; the effect exists once", arguments: sqlBackends)
    func crashedHolderIsTakenOver(backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in try await Self.crash(store, location: location) }
    }

    static func crash<S: SQLStore>(_ store: S, location: String) async throws {
        let table = uniqueName("captures")
        try await createEffectsTable(store, table)
        let scope = uniqueName("crash")
        let child = try ChildProcess([
            "worker", "hold-and-hang", "--database", location, "--scope", scope, "--table", table,
            "--key", "capture:pay_9", "--lease-seconds", "60",
        ])
        try await child.waitFor("writing")  // acquired, and inside the completing transaction
        await child.kill()
        #expect(child.printed.contains("acquired 1"))

        // Time is moved past the child's 60 s lease instead of waiting for it.
        let clock = ManualWallClock(start: SystemWallClock().now() + .seconds(61))
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.holder = "survivor"
        let operations = try Operations(store: store, configuration: configuration)
        let operationScope = try Scope(scope)
        guard case .acquired(let handle) = try await operations.begin(key: "capture:pay_9", scope: operationScope) else {
            Issue.record("the survivor should take over the crashed holder's key")
            return
        }
        #expect(handle.token == FencingToken(2))
        try await operations.complete(handle, result: "captured") { tx in
            try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('capture:pay_9', 'survivor', 2)")
        }
        let rows = try await store.withTransaction { tx in try await tx.query("SELECT worker FROM \(table)") }
        #expect(rows.map { $0["worker"] } == ["survivor"], "the crashed holder's uncommitted write is gone; the effect exists once")
        let receipt = try await operations.perform(key: "capture:pay_9", scope: operationScope) { _ in "again" }
        #expect(receipt.isReplay && receipt.value == "captured")
    }
}

@Suite("unrace demo")
struct DemoCommandTests {
    struct Document: Decodable {
        struct Row: Decodable {
            var race: String
            var `case`: String
            var naive: [String: Int]
            var guarded: [String: Int]
        }
        var rows: [Row]
    }

    @Test("demo --json: every race's cases, guarded never shows an anomaly, nothing is lost", arguments: sqlBackends)
    func demoJSON(backend: SQLBackend) async throws {
        var arguments = ["demo", "--json", "--operations", "40"]
        if backend == .postgres { arguments += ["--database", try TestPostgres.requireURL()] }
        let child = try ChildProcess(arguments)
        #expect(await child.exitStatus() == 0)
        let document = try JSONDecoder().decode(Document.self, from: Data(child.printed.utf8))
        let double = document.rows.filter { $0.race == "double-execution" }
        #expect(
            Set(double.map(\.case)) == ["order-creation", "payment-capture", "email-sending", "inventory-reservation", "coupon-redemption"]
        )
        #expect(double.allSatisfy { $0.guarded["missing"] == 0 && $0.guarded["effects"] == 40 && $0.naive["missing"] == 0 })
        #expect(double.map { $0.naive["anomalies"] ?? 0 }.reduce(0, +) > 0, "the naive handler duplicates somewhere")
        let lost = document.rows.filter { $0.race == "lost-update" }
        #expect(Set(lost.map(\.case)) == ["wallet", "inventory", "quota", "rate-limit", "seat-reservation"])
        #expect(lost.allSatisfy { ($0.naive["anomalies"] ?? 0) > 0 }, "every naive read-modify-write shows its anomaly")
        let ordering = try #require(document.rows.first { $0.race == "out-of-order" })
        #expect(ordering.guarded["matchesInOrder"] == 1)
        #expect((ordering.naive["anomalies"] ?? 0) > 0)
        #expect(document.rows.allSatisfy { $0.guarded["anomalies"] == 0 })
    }
}
