import MetricsTestKit
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// Two receives of one event id at once on PostgreSQL, where the second waits for the first's
/// stream lock: the second still sees what the first stored.
@Suite("Inbox: concurrent receives of one id", .timeLimit(.minutes(10)))
struct InboxRaceTests {
    /// How the second receive differs from the first, which holds the stream.
    enum Reuse: String, CaseIterable, CustomTestStringConvertible, Sendable {
        /// The same position, another payload.
        case otherPayload
        /// The same content at another, taken position of the stream.
        case otherPosition
        var testDescription: String { rawValue }
    }

    @Test(
        "an id received again differently while the first receive held the stream is event_id_reused, not a duplicate that drops it",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)"),
        arguments: Reuse.allCases
    )
    func reusedWhileWaiting(_ reuse: Reuse) async throws {
        try await withStore(.postgres) { store, _ in try await Self.reusedWhileWaiting(store, reuse) }
    }

    static func reusedWhileWaiting<S: SQLStore>(_ store: S, _ reuse: Reuse) async throws {
        let inbox = try Inbox(store: store)
        let prefix = uniqueName("race")
        let stream = "\(prefix)-s"
        // Sequence 1 is taken by another event first.
        let earlier = try InboxEvent(id: "\(prefix)-earlier", stream: stream, sequence: 1, type: "T")
        #expect(try await inbox.receive(earlier) { _, _ in .applied } == .applied(drained: 0))
        let first = try InboxEvent(id: "\(prefix)-e", stream: stream, sequence: 2, type: "T", payload: [1])
        let other =
            switch reuse {
            case .otherPayload: try InboxEvent(id: first.id, stream: stream, sequence: 2, type: "T", payload: [2])
            case .otherPosition: try InboxEvent(id: first.id, stream: stream, sequence: 1, type: "T", payload: [1])
            }
        let holding = Latch()
        let release = Latch()
        let backend = Mutex<Int64?>(nil)
        let applying = Task {
            try await inbox.receive(first) { tx, _ in
                let pid = try await backendPID(tx)
                backend.withLock { $0 = pid }
                holding.open()
                await release.wait()
                return .applied
            }
        }
        defer { release.open() }
        await holding.wait()
        let pid = try #require(backend.withLock { $0 })
        let handled = Counter()
        let reused = Task {
            try await inbox.receive(other) { _, _ in
                handled.increment()
                return .applied
            }
        }
        try await waitUntilBlocked(by: pid, on: store, "the second receive waiting on the stream")
        release.open()
        #expect(try await applying.value == .applied(drained: 0))
        let error = await #expect(throws: UnraceError.self) { try await reused.value }
        #expect(error?.code == .eventIDReused, "\(String(describing: error))")
        #expect(handled.value == 0)
        // The same event again is the duplicate it is.
        #expect(try await inbox.receive(first) { _, _ in .applied } == .duplicate)
    }
}

/// A skipped gap's markers go to the database in a few statements: a wide gap stays within a
/// step's timeout (PostgreSQL sends each statement at once).
@Suite("Inbox: skipping a wide gap")
struct InboxSkipBatchTests {
    @Test(
        "skipping a gap of 1,200 sequences stores its markers in a handful of statements",
        arguments: storeBackends.filter { $0 != .memory }
    )
    func markersInBulk(_ backend: Backend) async throws {
        switch backend {
        case .sqlite: try await withStore(.sqlite) { store, _ in try await Self.markersInBulk(store) }
        case .postgres: try await withStore(.postgres) { store, _ in try await Self.markersInBulk(store) }
        case .fluentSQLite: try await withFluentStore(.sqlite) { store, _ in try await Self.markersInBulk(store) }
        case .fluentPostgres: try await withFluentStore(.postgres) { store, _ in try await Self.markersInBulk(store) }
        case .memory: break
        }
    }

    static func markersInBulk<S: SQLStore>(_ store: S) async throws {
        let counting = CountingStore(inner: store)
        let inbox = try Inbox(store: counting)
        let stream = uniqueName("wide")
        let late = try InboxEvent(id: "\(stream)-late", stream: stream, sequence: 1_201, type: "T")
        #expect(try await inbox.receive(late) { _, _ in .applied } == .parked(waitingFor: 1))
        let before = counting.sent.value
        let (skipped, drained) = try await inbox.skipGap(stream: stream) { _, _ in .applied }
        let sent = counting.sent.value - before
        #expect(skipped == 1_200 && drained == 1)
        #expect(sent <= 20, "\(sent) statements to skip 1,200 sequences")
        #expect(try await inbox.head(of: stream) == 1_201)
        let early = try InboxEvent(id: "\(stream)-early", stream: stream, sequence: 600, type: "T")
        #expect(try await inbox.receive(early) { _, _ in .applied } == .duplicate, "a skipped position is taken")
    }
}

extension InboxSkipBatchTests {
    @Test("the parked events a skipped gap lets through count as drained, as when their gap fills")
    func skipCountsDrained() async throws {
        let metrics = TestMetrics()
        let inbox = try Inbox(store: MemoryStore(), observability: Observability(metricsFactory: metrics))
        for sequence: Int64 in [3, 4] {
            let event = try InboxEvent(id: "e\(sequence)", stream: "s", sequence: sequence, type: "T")
            #expect(try await inbox.receive(event) { _, _ in .applied } == .parked(waitingFor: 1))
        }
        let (skipped, drained) = try await inbox.skipGap(stream: "s") { _, _ in .applied }
        #expect(skipped == 2 && drained == 2)
        #expect(try metrics.expectCounter("unrace_inbox_drained_total", [("store", "memory")]).totalValue == 2)
    }
}
