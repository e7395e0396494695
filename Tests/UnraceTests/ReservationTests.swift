import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// Holds asked again under their key: the hold as it stands, never stale, never another hold;
/// and "was it new?" answered by the step that decided it.
@Suite("Reservations: repeated hold keys", .timeLimit(.minutes(10)))
struct ReservationTests {
    @Test(
        "a hold asked again reports its state as it stands: held, then not live once expired; other units or resource is hold_key_reused",
        arguments: allBackends
    )
    func repeatedKey(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.repeatedKey(store) }
    }

    static func repeatedKey<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let reservations = Reservations(store: store, clock: clock)
        let (show, other) = (uniqueName("show"), uniqueName("other"))
        _ = try await reservations.createResource(show, capacity: 4)
        _ = try await reservations.createResource(other, capacity: 4)
        let first = try await reservations.placeHold(show, units: 2, key: "k", timeToLive: .seconds(1))
        guard case .hold(let placed) = first.step, first.isNew else {
            Issue.record("the first hold is placed: \(first)")
            return
        }
        let again = try await reservations.placeHold(show, units: 2, key: "k", timeToLive: .seconds(1))
        #expect(again == HoldPlacement(.hold(placed), isNew: false))
        #expect(
            await QueueTests.code { _ = try await reservations.hold(show, units: 3, key: "k", timeToLive: .seconds(1)) }
                == "hold_key_reused"
        )
        #expect(
            await QueueTests.code { _ = try await reservations.hold(other, units: 2, key: "k", timeToLive: .seconds(1)) }
                == "hold_key_reused"
        )
        clock.advance(by: .seconds(2))
        let expired = try await reservations.placeHold(show, units: 2, key: "k", timeToLive: .seconds(1))
        guard case .notLive(let hold) = expired.step else {
            Issue.record("an expired hold asked again is not live: \(expired)")
            return
        }
        #expect(hold.state == .released && !expired.isNew)
        #expect(try await reservations.resource(show)?.held == 0, "its units went back")
        #expect(try await reservations.hold(key: "k")?.state == .released)
        // A confirmed hold asked again stays what it is.
        _ = try await reservations.hold(show, units: 1, key: "c", timeToLive: .seconds(60))
        guard case .hold(let confirmed) = try await reservations.confirm(key: "c") else {
            Issue.record("a live hold is confirmed")
            return
        }
        #expect(
            try await reservations.placeHold(show, units: 1, key: "c", timeToLive: .seconds(60))
                == HoldPlacement(.hold(confirmed), isNew: false)
        )
    }

    @Test("16 concurrent holds with one key: one hold, exactly one told it placed it", arguments: allBackends)
    func concurrentKey(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.concurrentKey(store) }
    }

    static func concurrentKey<S: Store>(_ store: S) async throws {
        let reservations = Reservations(store: store)
        let seat = uniqueName("seat")
        _ = try await reservations.createResource(seat, capacity: 1)
        let placements = try await withThrowingTaskGroup(of: HoldPlacement.self) { group in
            for _ in 0..<16 { group.addTask { try await reservations.placeHold(seat, key: "h", timeToLive: .seconds(60)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(placements.filter(\.isNew).count == 1)
        #expect(Set(placements.map(\.step)).count == 1)
        #expect(try await reservations.resource(seat)?.held == 1)
    }

    @Test("POST /seats/{show}/holds: 16 concurrent requests with one key answer 201 once and 200 fifteen times", arguments: sqlBackends)
    func shopHolds(_ backend: SQLBackend) async throws {
        try await withShop(backend) { client, _, _ in
            let answers = try await withThrowingTaskGroup(of: HTTPExchange.self) { group in
                for _ in 0..<16 {
                    group.addTask { try await client.send(.POST, "/seats/show-1/holds", json: #"{"key":"h1","seats":2,"ttlSeconds":60}"#) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(answers.filter { $0.status == 201 }.count == 1)
            #expect(answers.filter { $0.status == 200 }.count == 15)
            #expect(Set(answers.map(\.body)).count == 1)
        }
    }
}

extension ReservationTests {
    @Test("a hold key already holding one resource is refused on another", arguments: storeBackends)
    func holdKeysAcrossResources(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.holdKeys(store) }
    }

    static func holdKeys<S: Store>(_ store: S) async throws {
        do {
            let prefix = uniqueName("seat")
            let reservations = Reservations(store: store)
            try await reservations.createResource("\(prefix)-A", capacity: 1)
            try await reservations.createResource("\(prefix)-B", capacity: 1)
            guard case .hold = try await reservations.hold("\(prefix)-A", key: "\(prefix)-K", timeToLive: .seconds(60)) else {
                Issue.record("hold on A")
                return
            }
            let error = await #expect(throws: UnraceError.self) {
                try await reservations.hold("\(prefix)-B", key: "\(prefix)-K", timeToLive: .seconds(60))
            }
            #expect(error?.code == .holdKeyReused)
            #expect(try await reservations.resource("\(prefix)-B")?.available == 1)
        }
    }
}
