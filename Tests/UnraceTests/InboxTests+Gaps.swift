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

/// Gaps and first events the inbox refuses: what they leave behind.
extension InboxTests {
    @Test("a gap's age counts from the head's last move, whether or not that move drained a parked event", arguments: storeBackends)
    func gapAgeFromLastMove(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.gapAgeFromLastMove(store) }
    }

    static func gapAgeFromLastMove<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = InboxConfiguration()
        configuration.gapTimeout = .seconds(60)
        configuration.clock = clock
        let inbox = try Inbox(store: store, configuration: configuration)
        let moving = uniqueName("moving")
        let draining = uniqueName("draining")
        func receive(_ stream: String, _ sequence: Int64) async throws -> InboxOutcome {
            try await inbox.receive(try InboxEvent(id: "\(stream)-\(sequence)", stream: stream, sequence: sequence, type: "A")) {
                (_: S.Transaction, _) in .applied
            }
        }
        func reported() async throws -> Set<String> {
            Set(try await inbox.gaps(limit: 10_000).map(\.stream)).intersection([moving, draining])
        }
        #expect(try await receive(moving, 10) == .parked(waitingFor: 1))
        #expect(try await receive(draining, 3) == .parked(waitingFor: 1))
        #expect(try await receive(draining, 10) == .parked(waitingFor: 1))
        clock.advance(by: .seconds(59))
        // Both streams move now, one in order only, the other by draining its parked 3.
        for sequence: Int64 in 1...3 { #expect(try await receive(moving, sequence) == .applied(drained: 0)) }
        #expect(try await receive(draining, 1) == .applied(drained: 0))
        #expect(try await receive(draining, 2) == .applied(drained: 1))
        clock.advance(by: .seconds(2))
        #expect(try await reported().isEmpty, "both streams moved 2 s ago: neither is an old gap")
        clock.advance(by: .seconds(59))
        #expect(try await reported() == [moving, draining], "both have now waited 61 s for 4, alike")
    }

    @Test("a first event a lifecycle rejects, and a skip on a stream never seen, leave no row behind", arguments: storeBackends)
    func refusalsLeaveNoRows(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.refusalsLeaveNoRows(store) }
    }

    static func refusalsLeaveNoRows<S: Store>(_ store: S) async throws {
        let lifecycle = try Lifecycle(
            initial: "new",
            terminal: ["delivered"],
            transitions: [
                .init(from: "new", on: "Pay", to: "paid"), .init(from: "paid", on: "Ship", to: "shipped"),
                .init(from: "shipped", on: "Deliver", to: "delivered"),
            ]
        )
        let name = uniqueName("order")
        let guardian = try LifecycleGuard(store: store, lifecycle: lifecycle, name: name)
        guard case .rejected = try await guardian.apply("Ship", to: "o1") else {
            Issue.record("shipping an order never seen was not rejected")
            return
        }
        let stream = uniqueName("typo")
        let skip = try await Inbox(store: store).skipGap(stream: stream) { (_: S.Transaction, _) in .applied }
        #expect(skip.skipped == 0 && skip.drained == 0)
        // A first event that is rejected racing one that moves: the move always lands (and Ship,
        // when it comes second, moves on from paid).
        let entities = (0..<16).map { "race-\($0)" }
        try await withThrowingTaskGroup { group in
            for entity in entities {
                group.addTask { _ = try await guardian.apply("Ship", to: entity) }
                group.addTask { _ = try await guardian.apply("Pay", to: entity) }
            }
            try await group.waitForAll()
        }
        for entity in entities { #expect(["paid", "shipped"].contains(try await guardian.state(of: entity))) }
        #expect(try await guardian.state(of: "o1") == nil)
        guard let store = store as? any SQLStore else { return }
        #expect(try await count(store, "unrace_lifecycle_states WHERE lifecycle = ?", name) == entities.count, "only the moved entities")
        #expect(try await count(store, "unrace_inbox_streams WHERE stream = ?", stream) == 0)
    }

    static func count(_ store: some SQLStore, _ tableAndFilter: String, _ value: String) async throws -> Int {
        try await store.withTransaction { tx in
            Int(try await tx.query("SELECT COUNT(*) AS n FROM \(tableAndFilter)", [.text(value)])[0].int64("n"))
        }
    }
}
