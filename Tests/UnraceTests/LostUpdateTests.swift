import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// The lost-update race, as a race: the seed's timeline with the interleaving forced.
@Suite("Lost updates")
struct LostUpdateTests {
    struct Wallet: Codable, Sendable, Equatable { var balance: Int64 }

    @Test("the seed's timeline: naive ends at 20; versioned rejects one withdrawal and ends at 60 or 20", arguments: sqlBackends)
    func seedTimeline(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.seedTimeline(store) }
    }

    static func seedTimeline<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("wallets")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)")
            try await tx.execute("INSERT INTO \(table) (id, balance) VALUES ('alice', 100)")
        }
        // Naive: A reads 100, B reads 100, A writes 100 - 40, B writes 100 - 80.
        let bothRead = Barrier(parties: 2)
        let aWrote = Barrier(parties: 2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (amount, isA) in [(Int64(40), true), (Int64(80), false)] {
                group.addTask {
                    // Each party arrives at both barriers whatever its steps did.
                    let balance = await outcome {
                        try await store.withTransaction { tx in
                            try await tx.query("SELECT balance FROM \(table) WHERE id = 'alice'")[0].int64("balance")
                        }
                    }
                    await bothRead.arriveAndWait()
                    if !isA { await aWrote.arriveAndWait() }
                    let wrote = await outcome {
                        let newBalance = try balance.get() - amount
                        _ = try await store.withTransaction { tx in
                            try await tx.execute("UPDATE \(table) SET balance = ? WHERE id = 'alice'", [.integer(newBalance)])
                        }
                    }
                    if isA { await aWrote.arriveAndWait() }
                    try wrote.get()
                }
            }
            try await group.waitForAll()
        }
        let naive = try await store.withTransaction { tx in
            try await tx.query("SELECT balance FROM \(table) WHERE id = 'alice'")[0].int64("balance")
        }
        #expect(naive == 20, "the naive read-modify-write loses A's withdrawal")

        // Versioned: the same interleaving; B's write names the version it read and conflicts.
        let records = try Records(store: store, collection: uniqueName("wallets"))
        try await records.create("alice", Wallet(balance: 100))
        let readA = try #require(try await records.read("alice", as: Wallet.self))
        let readB = try #require(try await records.read("alice", as: Wallet.self))
        try await records.write("alice", Wallet(balance: readA.value.balance - 40), expectedVersion: readA.version)
        let conflict = await #expect(throws: UnraceError.self) {
            try await records.write("alice", Wallet(balance: readB.value.balance - 80), expectedVersion: readB.version)
        }
        #expect(conflict?.code == .versionConflict)
        // B re-reads and decides again: 60 - 80 would overdraw, so B's withdrawal is rejected.
        let reread = try #require(try await records.read("alice", as: Wallet.self))
        #expect(reread.value.balance == 60)
        #expect(reread.value.balance - 80 < 0, "B's retry sees the overdraft and rejects")

        // Bounded counter: both withdrawals race for real; exactly one is refused.
        let counters = Counters(store: store)
        let name = uniqueName("alice")
        try await counters.create(name, value: 100, floor: 0)
        let start = Barrier(parties: 2)
        let results = try await withThrowingTaskGroup(of: CounterStep.self) { group in
            for amount in [Int64(40), 80] {
                group.addTask {
                    await start.arriveAndWait()
                    return try await counters.adjust(name, by: -amount)
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        let applied = results.compactMap { if case .applied(let value) = $0 { value } else { nil } }
        #expect(applied.count == 1, "one withdrawal is refused")
        #expect(applied == [60] || applied == [20], "a state one of the two orders could produce")
    }

    @Test("1,000 concurrent increments through update(): none lost", arguments: sqlBackends)
    func concurrentIncrements(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.increments(store) }
    }

    static func increments<S: SQLStore>(_ store: S) async throws {
        var retry = RetryPolicy()
        retry.attempts = 1_000
        retry.maximumBackoff = .milliseconds(5)
        let records = try Records(store: store, collection: uniqueName("counters"), retry: retry)
        try await records.create("hits", 0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<16 {
                group.addTask {
                    for _ in stride(from: lane, to: 1_000, by: 16) {
                        try await records.update("hits", as: Int.self) { $0 += 1 }
                    }
                }
            }
            try await group.waitForAll()
        }
        let final = try #require(try await records.read("hits", as: Int.self))
        #expect(final.value == 1_000)
        #expect(final.version == 1_001)
    }

    @Test("the naive increment loses updates under the same concurrency", arguments: sqlBackends)
    func naiveIncrements(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.naiveIncrementsScenario(store) }
    }

    @Test("create-if-absent under a unique constraint: one of 16 racing creators wins", arguments: sqlBackends)
    func createIfAbsent(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.createIfAbsentScenario(store) }
    }

    @Test("200 concurrent buyers for 50 seats: exactly 50 confirmed, no seat twice; expired holds return", arguments: sqlBackends)
    func seats(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.seats(store) }
    }

    static func seats<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        let reservations = Reservations(store: store, clock: clock)
        let show = uniqueName("show")
        let seats = (0..<50).map { "\(show)-seat-\($0)" }
        for seat in seats { try await reservations.createResource(seat, capacity: 1) }

        // 20 early holders take a seat and walk away: their holds expire.
        for buyer in 0..<20 {
            guard case .hold = try await reservations.hold(seats[buyer], key: "\(show)-abandoned-\(buyer)", timeToLive: .seconds(60)) else {
                Issue.record("an early hold should succeed")
                return
            }
        }
        clock.advance(by: .seconds(61))

        let confirmed = try await withThrowingTaskGroup(of: String?.self) { group in
            for buyer in 0..<200 {
                group.addTask {
                    var generator = SeededGenerator(seed: UInt64(buyer))
                    for seat in generator.shuffled(seats) {
                        let key = "\(show)-buyer-\(buyer)"
                        if case .hold = try await reservations.hold(seat, key: key, timeToLive: .seconds(60)) {
                            guard case .hold(let done) = try await reservations.confirm(key: key) else { return nil }
                            return done.resource
                        }
                    }
                    return nil
                }
            }
            return try await group.reduce(into: [String]()) { if let seat = $1 { $0.append(seat) } }
        }
        #expect(confirmed.count == 50)
        #expect(Set(confirmed).count == 50, "no seat twice")
        let lateAbandoned = try await reservations.confirm(key: "\(show)-abandoned-0")
        guard case .notLive(let expired) = lateAbandoned else {
            Issue.record("an expired hold cannot be confirmed")
            return
        }
        #expect(expired.state == .released)
    }

    @Test("a naive check-then-book double-books a seat under the same race", arguments: sqlBackends)
    func naiveSeats(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.naiveSeatsScenario(store) }
    }

    @Test("quotas: 64 concurrent callers never spend more than the limit in a window", arguments: sqlBackends)
    func quota(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.quotaScenario(store) }
    }

    @Test("bad input: typed errors, nothing written")
    func badInput() async throws {
        let store = MemoryStore()
        let counters = Counters(store: store)
        try await counters.create("stock", value: 5)
        for delta in [Int64(0), Int64.max] {
            let error = await #expect(throws: UnraceError.self) { try await counters.adjust("stock", by: delta) }
            #expect(error?.code == .invalidArgument)
        }
        let missing = await #expect(throws: UnraceError.self) { try await counters.adjust("nope", by: 1) }
        #expect(missing?.code == .notFound)
        #expect(try await counters.adjust("stock", by: -6) == .refused(current: 5))
        let reservations = Reservations(store: store)
        let zero = await #expect(throws: UnraceError.self) { try await reservations.hold("r", units: 0, key: "k", timeToLive: .seconds(1)) }
        #expect(zero?.code == .invalidArgument)
        let unknown = await #expect(throws: UnraceError.self) { try await reservations.hold("r", key: "k", timeToLive: .seconds(1)) }
        #expect(unknown?.code == .notFound)
        let records = try Records(store: store, collection: "c")
        let badVersion = await #expect(throws: UnraceError.self) { try await records.write("x", 1, expectedVersion: 0) }
        #expect(badVersion?.code == .invalidArgument)
        let notFound = await #expect(throws: UnraceError.self) { try await records.write("x", 1, expectedVersion: 1) }
        #expect(notFound?.code == .notFound)
        #expect(try await records.read("x", as: Int.self) == nil)
        let emptyName = #expect(throws: UnraceError.self) { try Records(store: store, collection: "") }
        #expect(emptyName?.code == .invalidArgument)
    }

    static func naiveIncrementsScenario<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("hits")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY, n BIGINT NOT NULL)")
            try await tx.execute("INSERT INTO \(table) (id, n) VALUES ('hits', 0)")
        }
        // Pairs of increments read, meet at a barrier, then write: every pair loses one.
        for _ in 0..<10 {
            let met = Barrier(parties: 2)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        let read = await outcome {
                            try await store.withTransaction { tx in
                                try await tx.query("SELECT n FROM \(table) WHERE id = 'hits'")[0].int64("n")
                            }
                        }
                        await met.arriveAndWait()
                        let n = try read.get()
                        _ = try await store.withTransaction { tx in
                            try await tx.execute("UPDATE \(table) SET n = ? WHERE id = 'hits'", [.integer(n + 1)])
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        let n = try await store.withTransaction { tx in try await tx.query("SELECT n FROM \(table)")[0].int64("n") }
        #expect(n == 10, "20 increments, 10 lost")
    }

    static func createIfAbsentScenario<S: SQLStore>(_ store: S) async throws {
        let records = try Records(store: store, collection: uniqueName("users"))
        let results = try await withThrowingTaskGroup(of: Int64?.self) { group in
            for worker in 0..<16 { group.addTask { try await records.create("u1", ["worker": worker]) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0 == nil }.count == 1)
        #expect(results.compactMap { $0 } == Array(repeating: 1, count: 15))
    }

    static func naiveSeatsScenario<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("bookings")
        _ = try await store.withTransaction { tx in try await tx.execute("CREATE TABLE \(table) (seat TEXT NOT NULL, buyer TEXT NOT NULL)")
        }
        let checked = Barrier(parties: 2)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for buyer in ["b1", "b2"] {
                group.addTask {
                    let read = await outcome {
                        try await store.withTransaction { tx in
                            try await tx.query("SELECT 1 FROM \(table) WHERE seat = 'A1'").count
                        }
                    }
                    await checked.arriveAndWait()
                    let taken = try read.get()
                    if taken == 0 {
                        _ = try await store.withTransaction { tx in
                            try await tx.execute("INSERT INTO \(table) (seat, buyer) VALUES ('A1', ?)", [.text(buyer)])
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(try await store.withTransaction { tx in try await tx.query("SELECT * FROM \(table)").count } == 2)
    }

    static func quotaScenario<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        let counters = Counters(store: store, clock: clock)
        let name = uniqueName("api")
        let granted = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<64 {
                group.addTask {
                    if case .granted = try await counters.consume(name, limit: 10, window: .seconds(60)) { return true }
                    return false
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(granted == 10)
        clock.advance(by: .seconds(60))
        #expect(try await counters.consume(name, units: 10, limit: 10, window: .seconds(60)) == .granted(used: 10), "a new window")
    }
}

extension LostUpdateTests {
    @Test("a counter step past Int64's range is refused, and the counter still works", arguments: storeBackends)
    func counterOverflow(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.counterOverflow(store) }
    }

    static func counterOverflow<S: Store>(_ store: S) async throws {
        let counters = Counters(store: store)
        let low = uniqueName("low")
        try await counters.create(low, value: .min + 5, floor: .min)
        #expect(try await counters.adjust(low, by: -10) == .refused(current: .min + 5))
        #expect(try await counters.adjust(low, by: -5) == .applied(value: .min))
        #expect(try await counters.adjust(low, by: 1) == .applied(value: .min + 1))
        let high = uniqueName("high")
        try await counters.create(high, value: .max - 5)
        #expect(try await counters.adjust(high, by: 10) == .refused(current: .max - 5))
        #expect(try await counters.counter(high)?.value == .max - 5)
    }

    @Test(
        "quotas: over-limit refused in every window, windows only move forward, denials report the current window",
        arguments: storeBackends
    )
    func quotaWindows(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.quotaWindows(store) }
    }

    static func quotaWindows<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock(start: Timestamp(milliseconds: 1_700_000_040_000))  // 40 s into a minute
        let counters = Counters(store: store, clock: clock)
        let name = uniqueName("api")
        #expect(try await counters.consume(name, units: 5, limit: 3, window: .seconds(60)) == .denied(used: 0), "5 of 3 in a new window")
        #expect(try await counters.consume(name, units: 3, limit: 3, window: .seconds(60)) == .granted(used: 3))
        // A caller whose clock lags a whole window behind counts against the newer window.
        clock.advance(by: .seconds(60))
        #expect(try await counters.consume(name, units: 1, limit: 3, window: .seconds(60)) == .granted(used: 1))
        let lagging = Counters(store: store, clock: ManualWallClock(start: Timestamp(milliseconds: 1_700_000_040_000)))
        #expect(
            try await lagging.consume(name, units: 2, limit: 3, window: .seconds(60)) == .granted(used: 3),
            "not a reset of the old window"
        )
        #expect(try await lagging.consume(name, units: 1, limit: 3, window: .seconds(60)) == .denied(used: 3))
        // A denial in a new window reports that window's use, not the previous one's.
        clock.advance(by: .seconds(60))
        #expect(try await counters.consume(name, units: 4, limit: 3, window: .seconds(60)) == .denied(used: 0))
    }

    @Test("every retry policy gets its own jitter seed")
    func jitterSeeds() {
        #expect(Set((0..<8).map { _ in RetryPolicy().seed }).count == 8)
    }
}
