import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite
import UnraceShop

/// Retention is kept in every scope: records are purged across scopes, in bounded batches, and a
/// live lease is never purged.
@Suite("Purging across scopes", .timeLimit(.minutes(10)))
struct PurgeTests {
    static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    /// Every operation record in the store, as `scope/key state`, in byte order.
    static func records<S: SQLStore>(_ store: S) async throws -> [String] {
        try await store.withTransaction { tx in
            try await tx.query("SELECT scope, key, state FROM unrace_operations").map {
                "\(try $0.string("scope"))/\(try $0.string("key")) \(try $0.string("state"))"
            }
        }.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    @Test("purgeExpiredInEveryScope deletes expired records of every scope in bounded batches, never a live lease", arguments: allBackends)
    func everyScope(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.everyScope(store) }
    }

    static func everyScope<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.retention = .seconds(1)
        configuration.lease = .seconds(60)
        let operations = try Operations(store: store, configuration: configuration)
        let scopes = try ["p:0a1b", "p:ffee", "payments", Scope.default.rawValue].map { try Scope(stored: $0) }
        for scope in scopes {
            for key in ["k1", "k2"] { _ = try await operations.perform(key: key, scope: scope) { _ in key } }
        }
        guard case .acquired = try await operations.begin(key: "live", scope: scopes[0]) else {
            Issue.record("a fresh key is acquired")
            return
        }
        #expect(try await operations.purgeExpiredInEveryScope() == 0, "nothing has expired yet")
        clock.advance(by: .seconds(2))
        #expect(await QueueTests.code { _ = try await operations.purgeExpiredInEveryScope(limit: 0) } == "invalid_argument")
        #expect(try await operations.purgeExpiredInEveryScope(limit: 5) == 5, "a bounded batch")
        #expect(try await operations.purgeExpiredInEveryScope(limit: 5) == 3)
        #expect(try await operations.purgeExpiredInEveryScope(limit: 5) == 0)
        for scope in scopes {
            for key in ["k1", "k2"] { #expect(try await store.record(scope: scope, key: OperationKey(key)) == nil) }
        }
        #expect(try await store.record(scope: scopes[0], key: OperationKey("live"))?.state == .running, "a live lease is never purged")
        // Once its lease and retention are over, an abandoned claim goes too.
        clock.advance(by: .seconds(62))
        #expect(try await operations.purgeExpiredInEveryScope() == 1)
    }

    /// A clock moved only by hand whose sleeps do not move it (a ``ManualWallClock``'s do): the
    /// maintenance loops then wait without fast-forwarding time past the live lease.
    final class HandClock: WallClock {
        let manual = ManualWallClock()
        func now() -> Timestamp { manual.now() }
        func advance(by duration: Duration) { manual.advance(by: duration) }
        func sleep(for duration: Duration) async throws { try await Task.sleep(for: .milliseconds(5)) }
        var isRealTime: Bool { false }
    }

    @Test("unrace serve's purger leaves no expired record of any principal, and keeps a live lease", arguments: sqlBackends)
    func shopPurger(_ backend: SQLBackend) async throws {
        let clock = HandClock()
        var configuration = ShopConfiguration()
        configuration.clock = clock
        configuration.retention = .seconds(1)
        try await withShop(backend, configuration) { client, store, _ in
            try await Self.shopPurger(client, store, clock, configuration)
        }
    }

    static func shopPurger<S: SQLStore>(
        _ client: some HTTPTestClient,
        _ store: S,
        _ clock: HandClock,
        _ configuration: ShopConfiguration
    ) async throws {
        for principal in ["alice", "bob", "carol@example.com"] {
            let created = try await client.send(
                .POST,
                "/orders",
                headers: [("Idempotency-Key", "order-1"), ("X-Client-Id", principal)],
                json: #"{"sku":"widget","quantity":1}"#
            )
            #expect(created.status == 201)
        }
        // A claim still held by a live request, in a principal's scope.
        var live = OperationsConfiguration()
        live.clock = clock
        live.lease = .seconds(600)
        let scope = try Scope(stored: "p:" + String(repeating: "0", count: 40))
        guard case .acquired = try await Operations(store: store, configuration: live).begin(key: "in-flight", scope: scope) else {
            Issue.record("a fresh key is acquired")
            return
        }
        #expect(try await Self.records(store).count == 4)
        clock.advance(by: .seconds(5))
        let shop = try Shop(store: store, configuration: configuration, logger: Self.quiet)
        let group = ServiceGroup(services: try shop.maintenanceServices(purgeInterval: .seconds(30)), logger: Self.quiet)
        let running = Task { try await group.run() }
        defer { running.cancel() }
        let left = try await within(.seconds(60), "the purger emptying every principal's scope") {
            while true {
                let left = try await Self.records(store)
                if left.count == 1 { return left }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(left == ["\(scope.rawValue)/in-flight running"])
    }
}

extension PurgeTests {
    @Test("purge deletes one scope's expired records only, including released and abandoned ones", arguments: storeBackends)
    func purgePerScope(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.purgePerScope(store) }
    }

    static func purgePerScope<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.lease = .seconds(10)
        configuration.retention = .seconds(60)
        let operations = try Operations(store: store, configuration: configuration)
        let (mine, theirs) = (try Scope(uniqueName("tenant-a")), try Scope(uniqueName("tenant-b")))
        for scope in [mine, theirs] { _ = try await operations.perform(key: "done", scope: scope) { _ in 1 } }
        guard case .acquired(let released) = try await operations.begin(key: "released", scope: mine),
            case .acquired = try await operations.begin(key: "abandoned", scope: mine)
        else {
            Issue.record("claims")
            return
        }
        try await operations.fail(released, reason: .retryable)
        clock.advance(by: .seconds(61))
        // Abandoned: its lease (10 s) plus the retention (60 s) has not passed yet.
        #expect(try await operations.purgeExpired(scope: mine, limit: 100) == 2)
        #expect(try await operations.status(of: "done", scope: theirs) != .notStarted, "another tenant's record is untouched")
        #expect(try await operations.status(of: "abandoned", scope: mine) != .notStarted)
        clock.advance(by: .seconds(10))
        #expect(try await operations.purgeExpired(scope: mine, limit: 100) == 1)
        #expect(try await operations.status(of: "abandoned", scope: mine) == .notStarted)
        #expect(try await operations.purgeExpired(scope: theirs, limit: 100) == 1)
    }
}
