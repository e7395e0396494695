import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Unrace

@testable import UnracePostgres

/// The maintenance services in one `ServiceGroup` on a hand-moved clock: expired records purged,
/// pendings voided, holds reaped, acked messages purged, gaps reported; a graceful shutdown stops
/// them all.
@Suite("Maintenance services", .timeLimit(.minutes(10)))
struct MaintenanceServicesTests {
    @Test("a ServiceGroup of the services cleans up what expired and stops on graceful shutdown", arguments: storeBackends)
    func services(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.services(store) }
    }

    static func services<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let prefix = uniqueName("m")
        // An operation record with a 1 s retention.
        var operationsConfiguration = OperationsConfiguration()
        operationsConfiguration.clock = clock
        operationsConfiguration.retention = .seconds(1)
        let operations = try Operations(store: store, configuration: operationsConfiguration)
        let scope = try Scope(prefix)
        _ = try await operations.perform(key: "k", scope: scope) { _ in 1 }
        // A pending transfer with a 1 s timeout.
        var ledgerConfiguration = LedgerConfiguration()
        ledgerConfiguration.clock = clock
        let ledger = try Ledger(store: store, configuration: ledgerConfiguration)
        let (_, wallet, shop) = try await fundedWallet(ledger, prefix: prefix)
        _ = try await ledger.submit([
            Transfer(id: "\(prefix)-pending", debit: wallet, credit: shop, amount: 60, flags: .pending, timeoutMilliseconds: 1_000)
        ])
        // A hold with a 1 s time-to-live, on a resource nobody holds again.
        let reservations = Reservations(store: store, clock: clock)
        _ = try await reservations.createResource("\(prefix)-seats", capacity: 10)
        _ = try await reservations.hold("\(prefix)-seats", units: 4, key: "\(prefix)-hold", timeToLive: .seconds(1))
        // An acked message.
        var queueConfiguration = QueueConfiguration()
        queueConfiguration.clock = clock
        let queue = try MessageQueue(store: store, name: prefix, configuration: queueConfiguration)
        try await queue.enqueue([OutgoingMessage(id: "m1", payload: [1])])
        try await queue.ack(try await queue.lease(worker: "w")[0])
        // A stream waiting for its first event.
        var inboxConfiguration = InboxConfiguration()
        inboxConfiguration.clock = clock
        inboxConfiguration.gapTimeout = .seconds(1)
        let inbox = try Inbox(store: store, configuration: inboxConfiguration)
        _ = try await inbox.receive(try InboxEvent(id: "\(prefix)-e2", stream: "\(prefix)-s", sequence: 2, type: "T")) { _, _ in .applied }

        // Nothing has expired yet: the services would find nothing. Time moves on.
        let key = try OperationKey("k")
        #expect(try await store.record(scope: scope, key: key) != nil)
        clock.advance(by: .seconds(5))
        let reported = Mutex<[InboxGap]>([])
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let group = ServiceGroup(
            services: [
                try ExpiredRecordPurger(operations: operations, scopes: [scope], interval: .seconds(10), logger: quiet),
                try PendingTransferSweeper(ledger: ledger, interval: .seconds(10), logger: quiet),
                try ExpiredHoldReaper(reservations: reservations, interval: .seconds(10), logger: quiet),
                try CompletedMessagePurger(queue: queue, age: .seconds(1), interval: .seconds(10), logger: quiet),
                try InboxGapMonitor(inbox: inbox, interval: .seconds(10), logger: quiet) { gaps in reported.withLock { $0 += gaps } },
            ],
            logger: quiet
        )
        let running = Task { try await group.run() }
        let lastSeen = Mutex("")
        defer { running.cancel() }
        let cleaned: [InboxGap]
        do {
            cleaned = try await within(.seconds(60), "the services cleaning up") {
                while true {
                    let record = try await store.record(scope: scope, key: key)
                    let pending = try await ledger.lookupAccounts([wallet])[0].debitsPending
                    let held = try await reservations.resource("\(prefix)-seats")?.held
                    let depth = try await queue.depth()
                    let gaps = reported.withLock { $0 }
                    if record == nil, pending == 0, held == 0, depth == QueueDepth(), !gaps.isEmpty { return gaps }
                    lastSeen.withLock {
                        $0 =
                            "record \(record == nil ? "purged" : "kept"), pending \(pending), held \(held.map(String.init) ?? "-"), queue \(depth), gaps \(gaps.count)"
                    }
                    await Task.yield()
                }
            }
        } catch {
            Issue.record("last seen: \(lastSeen.withLock { $0 })")
            throw error
        }
        #expect(cleaned.first?.stream == "\(prefix)-s" && cleaned.first?.head == 0)
        #expect(try await reservations.hold(key: "\(prefix)-hold")?.state == .released)
        await group.triggerGracefulShutdown()
        try await within(.seconds(60), "the service group stopping") { try await running.value }
    }

    @Test("services refuse settings out of bounds")
    func bounds() throws {
        let store = MemoryStore()
        let operations = try Operations(store: store)
        #expect(throws: UnraceError.self) { try ExpiredRecordPurger(operations: operations, scopes: []) }
        #expect(throws: UnraceError.self) { try ExpiredRecordPurger(operations: operations, scopes: [.default], interval: .zero) }
        #expect(throws: UnraceError.self) { try ExpiredHoldReaper(reservations: Reservations(store: store), batchLimit: 10_001) }
        let queue = try MessageQueue(store: store, name: "q")
        #expect(throws: UnraceError.self) { try CompletedMessagePurger(queue: queue, batchLimit: 1_001) }
        #expect(throws: UnraceError.self) { try CompletedMessagePurger(queue: queue, age: .seconds(-1)) }
        #expect(throws: UnraceError.self) { try InboxGapMonitor(inbox: Inbox(store: store), interval: .seconds(7_200)) }
        // A scope every round would refuse would stop the purge of the scopes after it, forever.
        var configuration = OperationsConfiguration()
        configuration.allowedScopes = ["a"]
        let limited = try Operations(store: store, configuration: configuration)
        let outside = #expect(throws: UnraceError.self) {
            try ExpiredRecordPurger(operations: limited, scopes: ["b", "a"])
        }
        #expect(outside?.code == .invalidConfiguration)
        _ = try ExpiredRecordPurger(operations: limited, scopes: ["a"])
    }

    /// Maintenance.md: "a full batch runs the next round at once". The reaper's batch is counted
    /// in resources: five resources with expired holds and a batch of two take three rounds
    /// without waiting the interval (an hour on a clock nobody moves).
    @Test("the hold reaper runs the next round at once after a full batch of resources")
    func reaperFullBatch() async throws {
        let store = MemoryStore()
        let clock = StoppedClock()
        let reservations = Reservations(store: store, clock: clock)
        let prefix = uniqueName("reap")
        for index in 0..<5 {
            try await reservations.createResource("\(prefix)-\(index)", capacity: 1)
            _ = try await reservations.hold("\(prefix)-\(index)", key: "\(prefix)-hold-\(index)", timeToLive: .seconds(1))
        }
        clock.advance(by: .seconds(5))
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let reaper = try ExpiredHoldReaper(reservations: reservations, interval: .seconds(3_600), batchLimit: 2, logger: quiet)
        let running = Task { try await reaper.run() }
        defer { running.cancel() }
        try await within(.seconds(60), "the reaper releasing all five without waiting its interval") {
            while true {
                var held: Int64 = 0
                for index in 0..<5 { held += try await reservations.resource("\(prefix)-\(index)")?.held ?? 1 }
                if held == 0 { return }
                await Task.yield()
            }
        }
    }

    /// A hand-moved clock whose `sleep` waits (for real, until cancelled) instead of moving it:
    /// a service that waits its interval is seen waiting.
    struct StoppedClock: WallClock {
        let manual = ManualWallClock()
        func now() -> Timestamp { manual.now() }
        func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
        var isRealTime: Bool { false }
        func advance(by duration: Duration) { manual.advance(by: duration) }
    }

    /// The settings are `var`s: one set out of range after `init` (an interval of zero would
    /// have run rounds back to back, hammering the store) is refused by `run()` before any round.
    @Test("run() refuses settings set out of bounds after init, before any round")
    func boundsAtRun() async throws {
        let store = MemoryStore()
        let operations = try Operations(store: store)
        var purger = try ExpiredRecordPurger(operations: operations, scopes: [.default])
        purger.interval = .zero
        var sweeper = try PendingTransferSweeper(ledger: Ledger(store: store))
        sweeper.batchLimit = 0
        var reaper = try ExpiredHoldReaper(reservations: Reservations(store: store))
        reaper.interval = .seconds(-1)
        var monitor = try InboxGapMonitor(inbox: Inbox(store: store))
        monitor.interval = .nanoseconds(1)
        var queuePurger = try CompletedMessagePurger(queue: MessageQueue(store: store, name: "q"))
        queuePurger.age = .seconds(-1)
        let services: [any Service] = [purger, sweeper, reaper, monitor, queuePurger]
        for service in services {
            let error = await #expect(throws: UnraceError.self) {
                try await within(.seconds(60), "run() refusing its settings") { try await service.run() }
            }
            #expect(error?.code == .invalidConfiguration)
        }
    }
}

/// `PostgresStore(url:)` runs its own client as a `Service`: what `unrace serve` puts first in
/// its group.
@Suite("PostgresStore as a service", .timeLimit(.minutes(10)))
struct PostgresStoreServiceTests {
    @Test("a step waits for run() to migrate the schema; graceful shutdown stops the client; steps then fail, never hang")
    func runsAsService() async throws {
        guard TestPostgres.required else { return }
        let url = try TestPostgres.requireURL()
        let schema = uniqueName("svc")
        try await TestPostgres.execute("CREATE SCHEMA \(schema)")
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let store = try await PostgresStore(url: url + (url.contains("?") ? "&" : "?") + "search_path=\(schema)", logger: quiet)
        let counters = Counters(store: store)
        // Started before the client runs: it waits at the gate, and can only succeed once run()
        // has migrated the schema.
        let early = Task { try await counters.create("seats", value: 3) }
        for _ in 0..<1_000_000 where store.waitingSteps < 1 { await Task.yield() }
        try #require(store.waitingSteps == 1, "the early step waits at the gate")
        let group = ServiceGroup(services: [store], logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            #expect(try await early.value == true)
            #expect(try await counters.adjust("seats", by: -1) == .applied(value: 2))
            await #expect(throws: UnraceError.self) { try await store.run() }  // already running
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let error = await #expect(throws: UnraceError.self) { try await counters.counter("seats") }
        #expect(error?.code == .storeUnavailable)
        try await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE")
    }

    @Test(
        "a graceful shutdown while run() migrates (waiting on the schema lock) stops the service without an error",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func shutdownDuringMigration() async throws {
        let url = try TestPostgres.requireURL()
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        try await withStore(.postgres) { holderStore, _ in
            let schema = uniqueName("svm")
            try await TestPostgres.execute("CREATE SCHEMA \(schema)")
            // Another replica's migration of this schema, running: it holds the schema's key.
            let holder = await SchemaKeyHolder(holderStore, schema: schema)
            let store = try await PostgresStore(url: url + (url.contains("?") ? "&" : "?") + "search_path=\(schema)", logger: quiet)
            let group = ServiceGroup(services: [store], logger: quiet)
            let running = Task { try await group.run() }
            let stopped: Result<Void, any Error>
            do {
                try await holder.waitForWaiters(1)
                await group.triggerGracefulShutdown()
                stopped = try await within(.seconds(60), "the group stopping") { await running.result }
            } catch {
                stopped = .failure(error)
            }
            try? await holder.release()
            running.cancel()
            try? await TestPostgres.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            #expect(throws: Never.self) { try stopped.get() }
        }
    }

    @Test("a step waiting for a store that never runs stops when cancelled; run() refuses a store whose client its creator runs")
    func cancelledWaiterAndForeignClient() async throws {
        guard TestPostgres.required else { return }
        let url = try TestPostgres.requireURL()
        let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        let idle = try await PostgresStore(url: url, logger: quiet)
        // Cancelled before it reaches the gate, and cancelled while it waits there.
        let early = Task { try await Counters(store: idle).counter("x") }
        early.cancel()
        await #expect(throws: CancellationError.self) { try await early.value }
        let waiting = Task { try await Counters(store: idle).counter("x") }
        for _ in 0..<1_000_000 where idle.waitingSteps < 1 { await Task.yield() }
        try #require(idle.waitingSteps == 1, "the step waits at the gate")
        waiting.cancel()
        await #expect(throws: CancellationError.self) { try await waiting.value }
        #expect(idle.waitingSteps == 0)

        try await withStore(.postgres) { store, _ in
            let error = await #expect(throws: UnraceError.self) { try await (store as! PostgresStore).run() }
            #expect(error?.code == .invalidArgument)
        }
    }
}
