import Foundation
import Unrace
import UnraceSQL
import UnraceSimulation

/// The lost-update race: the seed's five cases, each with 32 concurrent callers. The naive
/// handler reads, then writes what it computed — and all reads happen before any write, the
/// seed's timeline. The guarded handler uses Unrace's primitive for the case.
struct LostUpdateDemo: StoreJob {
    static let callers = 32

    func run<S: SQLStore>(_ store: S) async throws -> DemoSection {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let table = "demo_lost_\(suffix)"
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (name TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        }
        let naive = NaiveCell(store: store, table: table)
        var rows: [DemoRow] = []

        // Wallet: balance 100, 32 withdrawals of 10.
        try await naive.set("wallet", 100)
        let naivePaid = try await naive.race("wallet", Self.callers) { value in value >= 10 ? value - 10 : nil }
        let ledger = try Ledger(store: store)
        let wallet = "demo-\(suffix)-alice"
        _ = try await ledger.createAccounts([
            Account(id: "demo-\(suffix)-bank", ledger: 1, code: 1),
            Account(id: wallet, ledger: 1, code: 2, flags: .debitsMustNotExceedCredits),
            Account(id: "demo-\(suffix)-shop", ledger: 1, code: 3),
        ])
        _ = try await ledger.submit([Transfer(id: "demo-\(suffix)-fund", debit: "demo-\(suffix)-bank", credit: wallet, amount: 100)])
        let guardedPaid = try await Self.race(Self.callers) { index in
            try await ledger.submit([Transfer(id: "demo-\(suffix)-w\(index)", debit: wallet, credit: "demo-\(suffix)-shop", amount: 10)])[0]
                == .created
        }
        rows.append(
            row("wallet", "balance 100, 32 withdrawals of 10", naive: max(0, naivePaid * 10 - 100), guarded: max(0, guardedPaid * 10 - 100))
        )

        // Inventory: 20 in stock, 32 buyers of one.
        try await naive.set("stock", 20)
        let naiveSold = try await naive.race("stock", Self.callers) { value in value >= 1 ? value - 1 : nil }
        let counters = Counters(store: store)
        try await counters.create("demo-\(suffix)-stock", value: 20, floor: 0)
        let guardedSold = try await Self.race(Self.callers) { _ in
            if case .applied = try await counters.adjust("demo-\(suffix)-stock", by: -1) { return true }
            return false
        }
        rows.append(row("inventory", "20 in stock, 32 buyers", naive: max(0, naiveSold - 20), guarded: max(0, guardedSold - 20)))

        // Quota: 10 exports per window, 32 requests.
        try await naive.set("quota", 0)
        let naiveGranted = try await naive.race("quota", Self.callers) { value in value < 10 ? value + 1 : nil }
        let guardedGranted = try await Self.race(Self.callers) { _ in
            // The longest window: the race crossing a window's edge (which would rightly grant 10
            // more) is one chance in hundreds of millions, not one in an hour's worth of runs.
            if case .granted = try await counters.consume("demo-\(suffix)-quota", limit: 10, window: Counters<S>.windowMaximum) {
                return true
            }
            return false
        }
        rows.append(
            row("quota", "limit 10 per window, 32 requests", naive: max(0, naiveGranted - 10), guarded: max(0, guardedGranted - 10))
        )

        // Rate limit: every request must be counted; 32 requests.
        try await naive.set("hits", 0)
        let counted = try await naive.race("hits", Self.callers) { value in value + 1 }
        let naiveHits = try await naive.get("hits")
        try await counters.create("demo-\(suffix)-hits", value: 0)
        _ = try await Self.race(Self.callers) { _ in
            if case .applied = try await counters.adjust("demo-\(suffix)-hits", by: 1) { return true }
            return false
        }
        let guardedHits = try await counters.adjust("demo-\(suffix)-hits", by: 1)
        let guardedLost = { if case .applied(let value) = guardedHits { return Self.callers + 1 - Int(value) } else { return -1 } }()
        rows.append(row("rate-limit", "32 requests counted", naive: counted - Int(naiveHits), guarded: guardedLost))

        // Seat: one seat, 32 buyers.
        let bookings = "\(table)_bookings"
        _ = try await store.withTransaction { tx in try await tx.execute("CREATE TABLE \(bookings) (buyer TEXT NOT NULL)") }
        let naiveBooked = try await Self.raceReadThenWrite(Self.callers, store: store) { tx in
            try await tx.query("SELECT COUNT(*) AS n FROM \(bookings)")[0].int64("n") == 0
        } write: { tx, index in
            try await tx.execute("INSERT INTO \(bookings) (buyer) VALUES (?)", [.text("b\(index)")])
        }
        let reservations = Reservations(store: store)
        try await reservations.createResource("demo-\(suffix)-seat-A1", capacity: 1)
        let guardedBooked = try await Self.race(Self.callers) { index in
            guard
                case .hold = try await reservations.hold(
                    "demo-\(suffix)-seat-A1",
                    key: "demo-\(suffix)-b\(index)",
                    timeToLive: .seconds(300)
                )
            else { return false }
            if case .hold = try await reservations.confirm(key: "demo-\(suffix)-b\(index)") { return true }
            return false
        }
        rows.append(row("seat-reservation", "1 seat, 32 buyers", naive: max(0, naiveBooked - 1), guarded: max(0, guardedBooked - 1)))

        _ = try await store.withTransaction { tx in
            try await tx.execute("DROP TABLE \(table)")
            try await tx.execute("DROP TABLE \(bookings)")
        }
        return DemoSection(
            title: "The lost-update race",
            explanation: [
                "32 callers each read the state, then write what they computed from it; every read lands before any write.",
                "The naive handler trusts its read; the guarded one uses the ledger (wallet), a bounded counter",
                "(inventory, rate limit), a quota, or a reservation (seat) — each checks its rule inside the write.",
                "Anomalies: money paid out beyond the balance, units sold beyond stock, requests beyond the quota,",
                "increments lost, extra bookings of the one seat.",
            ],
            columns: ("setting", "callers", "overdraft/oversold/lost"),
            rows: rows
        )
    }

    private func row(_ name: String, _ setting: String, naive: Int, guarded: Int) -> DemoRow {
        DemoRow(
            race: "lost-update",
            caseName: name,
            variant: setting,
            operations: Self.callers,
            settings: [:],
            naive: ["anomalies": naive],
            guarded: ["anomalies": guarded],
            shown: Self.callers
        )
    }

    /// Runs `body` in `callers` tasks released together; returns how many returned `true`.
    static func race(_ callers: Int, _ body: @escaping @Sendable (Int) async throws -> Bool) async throws -> Int {
        let start = Barrier(parties: callers)
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<callers {
                group.addTask {
                    await start.arriveAndWait()
                    return try await body(index)
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }

    /// The naive check-then-act, in two transactions with every check before any act.
    static func raceReadThenWrite<S: SQLStore>(
        _ callers: Int,
        store: S,
        check: @escaping @Sendable (S.Transaction) async throws -> Bool,
        write: @escaping @Sendable (S.Transaction, Int) async throws -> Void
    ) async throws -> Int {
        let read = Barrier(parties: callers)
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<callers {
                group.addTask {
                    // Arrive whatever the read did: a caller that failed and never arrived would
                    // leave every other one waiting for ever.
                    let checked: Result<Bool, any Error>
                    do { checked = .success(try await store.withTransaction { tx in try await check(tx) }) } catch {
                        checked = .failure(error)
                    }
                    await read.arriveAndWait()
                    guard try checked.get() else { return false }
                    _ = try await store.withTransaction { tx in try await write(tx, index) }
                    return true
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }
}

/// One named integer in a plain table, read and written the naive way.
struct NaiveCell<S: SQLStore>: Sendable {
    let store: S
    let table: String

    func set(_ name: String, _ value: Int64) async throws {
        _ = try await store.withTransaction { tx in
            try await tx.execute(
                "INSERT INTO \(table) (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [.text(name), .integer(value)]
            )
        }
    }

    func get(_ name: String) async throws -> Int64 {
        try await store.withTransaction { tx in
            try await tx.query("SELECT value FROM \(table) WHERE name = ?", [.text(name)])[0].int64("value")
        }
    }

    /// `callers` tasks read the cell, all reads first, then each writes `decide(read)` unless it
    /// returns `nil`. Returns how many wrote — how many believed they succeeded.
    func race(_ name: String, _ callers: Int, _ decide: @escaping @Sendable (Int64) -> Int64?) async throws -> Int {
        let barrier = Barrier(parties: callers)
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    // Arrive whatever the read did (see raceReadThenWrite).
                    let read: Result<Int64, any Error>
                    do { read = .success(try await get(name)) } catch { read = .failure(error) }
                    await barrier.arriveAndWait()
                    guard let next = decide(try read.get()) else { return false }
                    try await set(name, next)
                    return true
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }
}
