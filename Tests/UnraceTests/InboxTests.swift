import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite
import UnraceSimulation

/// The out-of-order race: shuffled, duplicated order events, naive consumer against the inbox.
@Suite("Inbox")
struct InboxTests {
    /// Seeds per SQL backend in the suite; `UNRACE_PROPERTY_SEEDS=1000` runs the full property.
    static let sqlSeeds = Int(ProcessInfo.processInfo.environment["UNRACE_PROPERTY_SEEDS"] ?? "") ?? 24

    @Test("property on the memory store: 1,000 seeds of 100 shuffled, duplicated orders equal in-order application")
    func memoryProperty() async throws {
        for seed in UInt64(1)...1_000 {
            // The memory store never suspends: without a pause between seeds, this test would hold
            // one of the task pool's threads for all 1,000 (seconds, longer under load).
            await Task.yield()
            let store = MemoryStore()
            let inbox = try Inbox(store: store)
            let streams = try OrderStreams.streams(orders: 100, seed: seed)
            for event in OrderStreams.deliveries(of: streams, seed: seed) {
                _ = try await inbox.receive(event) { tx, event in Self.applyInMemory(tx, event) }
            }
            let states = store.rows(in: "orders").mapValues { String(decoding: $0, as: UTF8.self) }
            #expect(states == OrderStreams.inOrderFinalStates(streams), "seed \(seed)")
            #expect(store.rows(in: "handled").count == streams.joined().count, "one handler run per event id, seed \(seed)")
        }
    }

    static func applyInMemory(_ tx: MemoryTransaction, _ event: InboxEvent) -> InboxVerdict {
        #expect(tx.insert("handled", id: event.id, [1]), "a handler ran twice for \(event.id)")
        let current = tx.get("orders", id: event.stream).map { String(decoding: $0, as: UTF8.self) }
        switch OrderStreams.lifecycle.applyWithPlaceholder(event.type, to: current) {
        case .moved(_, let target):
            tx.put("orders", id: event.stream, Array(target.utf8))
            return .applied
        case .rejected(let reason), .absorbed(let reason):
            return .rejected(reason: reason)
        }
    }

    @Test("property on SQL: shuffled, duplicated orders end as in-order application; one handler run per event", arguments: sqlBackends)
    func sqlProperty(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.sqlProperty(store) }
    }

    static func sqlProperty<S: SQLStore>(_ store: S) async throws {
        let inbox = try Inbox(store: store)
        // Seeds run 8 at a time, each in tables and streams of its own.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<8 {
                group.addTask {
                    for seed in stride(from: UInt64(1 + lane), through: UInt64(sqlSeeds), by: 8) {
                        try await Self.checkSeed(seed, store, inbox)
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    static func checkSeed<S: SQLStore>(_ seed: UInt64, _ store: S, _ inbox: Inbox<S>) async throws {
        let projection = SQLOrderProjection(prefix: uniqueName("p"))
        try await projection.createTables(store)
        let streams = try OrderStreams.streams(orders: 100, seed: seed, prefix: projection.prefix)
        for event in OrderStreams.deliveries(of: streams, seed: seed) {
            _ = try await inbox.receive(event) { tx, event in try await projection.apply(tx, event) }
        }
        #expect(try await projection.finalStates(store) == OrderStreams.inOrderFinalStates(streams), "seed \(seed)")
        let runs = try await projection.handlerRuns(store)
        #expect(runs.runs == streams.joined().count && runs.distinct == runs.runs, "seed \(seed)")
        try await projection.dropTables(store)
    }

    @Test("the naive consumer under the same deliveries resurrects, ships after cancel, regresses", arguments: sqlBackends)
    func naiveConsumer(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in
            try await Self.naive(store)
        }
    }

    static func naive<S: SQLStore>(_ store: S) async throws {
        let projection = SQLOrderProjection(prefix: uniqueName("naive"))
        try await projection.createTables(store)
        let streams = try OrderStreams.streams(orders: 100, seed: 7, prefix: projection.prefix)
        for event in OrderStreams.deliveries(of: streams, seed: 7) {
            _ = try await store.withTransaction { tx in try await projection.applyNaively(tx, event) }
        }
        let anomalies = OrderStreams.anomalies(
            actual: try await projection.finalStates(store),
            expected: OrderStreams.inOrderFinalStates(streams)
        )
        #expect(anomalies.resurrected > 0)
        #expect(anomalies.shippedAfterCancel > 0)
        #expect(anomalies.regressed > 0)
        let runs = try await projection.handlerRuns(store)
        #expect(runs.runs > runs.distinct, "the naive consumer applies duplicates again")
    }

    @Test("8 concurrent consumers on the same shuffled deliveries keep the property", arguments: sqlBackends)
    func concurrentConsumers(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.concurrent(store) }
    }

    static func concurrent<S: SQLStore>(_ store: S) async throws {
        let inbox = try Inbox(store: store)
        let projection = SQLOrderProjection(prefix: uniqueName("conc"))
        try await projection.createTables(store)
        let streams = try OrderStreams.streams(orders: 100, seed: 11, prefix: projection.prefix)
        let deliveries = OrderStreams.deliveries(of: streams, seed: 11)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<8 {
                group.addTask {
                    for index in stride(from: lane, to: deliveries.count, by: 8) {
                        _ = try await inbox.receive(deliveries[index]) { tx, event in try await projection.apply(tx, event) }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await projection.finalStates(store) == OrderStreams.inOrderFinalStates(streams))
        let runs = try await projection.handlerRuns(store)
        #expect(runs.runs == streams.joined().count && runs.distinct == runs.runs)
    }

    @Test("3 OS processes consume the same shuffled deliveries: the property holds", arguments: sqlBackends)
    func threeProcesses(backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in
            let projection = SQLOrderProjection(prefix: uniqueName("proc"))
            try await projection.createTables(store)
            let children = try (0..<3).map { lane in
                try ChildProcess([
                    "worker", "consume-orders", "--database", location, "--prefix", projection.prefix,
                    "--orders", "100", "--seed", "13", "--lane", "\(lane)", "--lanes", "3",
                ])
            }
            for child in children { #expect(await child.exitStatus() == 0, "\(child.printed)") }
            let streams = try OrderStreams.streams(orders: 100, seed: 13, prefix: projection.prefix)
            #expect(try await projection.finalStates(store) == OrderStreams.inOrderFinalStates(streams))
            let runs = try await projection.handlerRuns(store)
            #expect(runs.runs == streams.joined().count && runs.distinct == runs.runs)
        }
    }

    @Test("cancel before create: naive resurrects; the lifecycle guard and the inbox end cancelled", arguments: sqlBackends)
    func cancelBeforeCreate(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.cancelBeforeCreate(store) }
    }

    static func cancelBeforeCreate<S: SQLStore>(_ store: S) async throws {
        let projection = SQLOrderProjection(prefix: uniqueName("cbc"))
        try await projection.createTables(store)
        let stream = "\(projection.prefix)-o1"
        let created = try InboxEvent(id: "\(stream)-1", stream: stream, sequence: 1, type: "OrderCreated")
        let cancelled = try InboxEvent(id: "\(stream)-2", stream: stream, sequence: 2, type: "OrderCancelled")

        // Naive: the cancel lands first, then the create overwrites it.
        for event in [cancelled, created] {
            _ = try await store.withTransaction { tx in try await projection.applyNaively(tx, event) }
        }
        #expect(try await projection.finalStates(store)[stream] == "created", "the naive consumer resurrects the order")

        // The lifecycle guard alone (events without sequence numbers).
        let guardian = try LifecycleGuard(store: store, lifecycle: OrderStreams.lifecycle, name: uniqueName("order"))
        #expect(try await guardian.apply("OrderCancelled", to: "o1") == .moved(from: "new", to: "cancelled"))
        guard case .absorbed(let reason) = try await guardian.apply("OrderCreated", to: "o1") else {
            Issue.record("the late create must be absorbed and reported")
            return
        }
        #expect(reason.contains("OrderCreated"))

        // The inbox: the cancel is parked until the create arrives, then both apply in order.
        let inbox = try Inbox(store: store)
        let other = SQLOrderProjection(prefix: uniqueName("cbci"))
        try await other.createTables(store)
        let stream2 = "\(other.prefix)-o1"
        let cancel2 = try InboxEvent(id: "\(stream2)-2", stream: stream2, sequence: 2, type: "OrderCancelled")
        let create2 = try InboxEvent(id: "\(stream2)-1", stream: stream2, sequence: 1, type: "OrderCreated")
        #expect(try await inbox.receive(cancel2) { try await other.apply($0, $1) } == .parked(waitingFor: 1))
        #expect(try await inbox.receive(create2) { try await other.apply($0, $1) } == .applied(drained: 1))
        #expect(try await inbox.receive(create2) { try await other.apply($0, $1) } == .duplicate)
        #expect(try await other.finalStates(store)[stream2] == "cancelled")
    }

    @Test("past the parking bound an event is refused, nothing is written, and it applies when redelivered", arguments: sqlBackends)
    func parkingBound(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.parkingBound(store) }
    }

    static func parkingBound<S: SQLStore>(_ store: S) async throws {
        var configuration = InboxConfiguration()
        configuration.parkingLimit = 2
        let inbox = try Inbox(store: store, configuration: configuration)
        let projection = SQLOrderProjection(prefix: uniqueName("bound"))
        try await projection.createTables(store)
        let stream = try OrderStreams.streams(orders: 1, seed: 3, prefix: projection.prefix)[0]
        let events =
            stream
            + (stream.count + 1...5).map {
                try! InboxEvent(id: "\(stream[0].stream)-x\($0)", stream: stream[0].stream, sequence: Int64($0), type: "Note")
            }
        let apply: (S.Transaction, InboxEvent) async throws -> InboxVerdict = { tx, event in
            if event.type == "Note" {
                try await tx.execute("INSERT INTO \(projection.prefix)_handled (event_id) VALUES (?)", [.text(event.id)])
                return .applied
            }
            return try await projection.apply(tx, event)
        }
        #expect(try await inbox.receive(events[2], apply) == .parked(waitingFor: 1))
        #expect(try await inbox.receive(events[3], apply) == .parked(waitingFor: 1))
        let error = await #expect(throws: UnraceError.self) { try await inbox.receive(events[4], apply) }
        #expect(error?.code == .parkingLimitReached)
        #expect(try await projection.handlerRuns(store).runs == 0)
        #expect(try await inbox.receive(events[0], apply) == .applied(drained: 0))
        #expect(try await inbox.receive(events[1], apply) == .applied(drained: 2))
        #expect(try await inbox.receive(events[4], apply) == .applied(drained: 0), "the refused event is applied when it comes back")
        #expect(try await inbox.head(of: stream[0].stream) == 5)
        #expect(try await projection.handlerRuns(store).runs == 5)
    }

    @Test("an old gap is reported, and skipping it records the skip and drains", arguments: sqlBackends)
    func gapReport(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.gapReport(store) }
    }

    static func gapReport<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = InboxConfiguration()
        configuration.gapTimeout = .seconds(30)
        configuration.clock = clock
        let inbox = try Inbox(store: store, configuration: configuration)
        let stream = uniqueName("gap")
        let noop: (S.Transaction, InboxEvent) async throws -> InboxVerdict = { _, _ in .applied }
        #expect(
            try await inbox.receive(try InboxEvent(id: "\(stream)-1", stream: stream, sequence: 1, type: "A"), noop) == .applied(drained: 0)
        )
        #expect(
            try await inbox.receive(try InboxEvent(id: "\(stream)-4", stream: stream, sequence: 4, type: "A"), noop)
                == .parked(waitingFor: 2)
        )
        #expect(try await inbox.gaps().filter { $0.stream == stream }.isEmpty, "a young gap is not reported")
        clock.advance(by: .seconds(31))
        let gap = try #require(try await inbox.gaps().first { $0.stream == stream })
        #expect(gap.waitingFor == 2 && gap.parked == 1)
        #expect(InboxGap(stream: "s", head: .max, parked: 1, since: Timestamp(milliseconds: 0)).waitingFor == .max, "total at the bound")
        let result = try await inbox.skipGap(stream: stream, noop)
        #expect(result.skipped == 2 && result.drained == 1)
        #expect(try await inbox.head(of: stream) == 4)
        #expect(try await inbox.gaps().filter { $0.stream == stream }.isEmpty)
        #expect(
            try await inbox.receive(try InboxEvent(id: "\(stream)-2", stream: stream, sequence: 2, type: "A"), noop) == .duplicate,
            "a skipped position is taken"
        )
    }
}

extension InboxTests {
    @Test(
        "an event id reused on another stream, or with another type or payload, is refused, and its handler never runs again",
        arguments: storeBackends
    )
    func eventIDReused(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.eventIDReused(store) }
    }

    static func eventIDReused<S: Store>(_ store: S) async throws {
        let prefix = uniqueName("inbox")
        let inbox = try Inbox(store: store)
        let runs = Counter()
        let first = try InboxEvent(id: "\(prefix)-e", stream: "\(prefix)-A", sequence: 1, type: "T")
        #expect(
            try await inbox.receive(first) { _, _ in
                runs.increment()
                return .applied
            } == .applied(drained: 0)
        )
        let reused = try InboxEvent(id: "\(prefix)-e", stream: "\(prefix)-B", sequence: 1, type: "T")
        let error = await #expect(throws: UnraceError.self) {
            try await inbox.receive(reused) { _, _ in
                runs.increment()
                return .applied
            }
        }
        #expect(error?.code == .eventIDReused)
        #expect(runs.value == 1)
        #expect(try await inbox.head(of: "\(prefix)-B") == 0)
        #expect(
            try await inbox.receive(first) { _, _ in
                runs.increment()
                return .applied
            } == .duplicate
        )
        // The same id and position with another type or payload is another event: refused,
        // applied or parked alike, and the stored content stands.
        let parked = try InboxEvent(id: "\(prefix)-p", stream: "\(prefix)-A", sequence: 3, type: "Shipped", payload: [1])
        #expect(try await inbox.receive(parked) { _, _ in .applied } == .parked(waitingFor: 2))
        for other in [
            try InboxEvent(id: "\(prefix)-e", stream: "\(prefix)-A", sequence: 1, type: "Other"),
            try InboxEvent(id: "\(prefix)-e", stream: "\(prefix)-A", sequence: 1, type: "T", payload: [9]),
            try InboxEvent(id: "\(prefix)-p", stream: "\(prefix)-A", sequence: 3, type: "Cancelled", payload: [1]),
            try InboxEvent(id: "\(prefix)-p", stream: "\(prefix)-A", sequence: 3, type: "Shipped", payload: [2]),
        ] {
            let refused = await #expect(throws: UnraceError.self) { try await inbox.receive(other) { _, _ in .applied } }
            #expect(refused?.code == .eventIDReused, "\(other.type) \(other.payload)")
        }
        #expect(try await inbox.receive(parked) { _, _ in .applied } == .duplicate)
        let drained = Mutex<[String]>([])
        _ = try await inbox.receive(try InboxEvent(id: "\(prefix)-2", stream: "\(prefix)-A", sequence: 2, type: "Paid")) { _, event in
            drained.withLock { $0.append(event.type + "\(event.payload)") }
            return .applied
        }
        #expect(drained.withLock { $0 } == ["Paid[]", "Shipped[1]"])
        #expect(runs.value == 1)
    }
}
