import Unrace

/// The lost-update race: clients read, decide, and write back, and a write based on a stale
/// read silently undoes another. No broker: the race is between the reads.
///
/// Naive handlers read in one step and write in another. Guarded ones use ``Records`` (a
/// version compare-and-swap with bounded retries), ``Counters`` (one conditional statement,
/// bounded counters and fixed-window quotas) and ``Reservations`` (holds with a capacity).
enum LostUpdate {
    static let faults: Set<FaultKind> = [.latency, .transient, .pause]

    static let scenarios: [Scenario] = [wallet, inventory, quota, rateLimit, seat]

    /// Spawns `count` clients; each runs `request` once (retrying transient store errors).
    static func clients(_ world: World, count: Int, _ request: @escaping @Sendable (Int) async throws -> Void) {
        for index in 0..<count {
            world.spawn("client-\(index + 1)", delay: Int64(world.choices.below(20))) {
                try await world.retryingTransient { try await request(index) }
            }
        }
    }

    /// Reads an integer from a plain table in one step: the naive handlers' read.
    static func naiveRead(_ world: World, _ table: String, _ id: String, as label: String) async throws -> Int64 {
        let value = try await world.store.withTransaction { tx in Int64(bytes: try await tx.get(table, id: id)) }
        world.annotate("→ read \(label) \(value)")
        return value
    }

    /// Writes an integer in one step: the naive handlers' blind write.
    static func naiveWrite(_ world: World, _ table: String, _ id: String, _ value: Int64, as label: String) async throws {
        try await world.store.withTransaction { tx in try await tx.put(table, id: id, value.bytes) }
        world.annotate("→ wrote \(label) \(value)")
    }

    // MARK: Wallet

    static let wallet = Scenario(
        name: "wallet",
        race: "lost-update",
        summary: "two services read balance 100; one withdraws 40, the other 80; both write",
        invariants: ["money-conserved", "no-overdraft"],
        faults: faults,
        pauseLength: 500
    ) { world, handler, _ in
        let initial: Int64 = 100
        let count = world.choices.inRange(2...5)
        let amounts: [Int64] = (0..<count).map { index in index == 0 ? 40 : index == 1 ? 80 : Int64(10 * world.choices.inRange(1...9)) }
        world.setting("balance \(initial), withdrawals \(amounts.map(String.init).joined(separator: ", "))")
        let accepted = Notebook()
        let records = try Records(
            store: world.store,
            collection: "wallets",
            retry: retryPolicy(world),
            clock: world.clock,
            observability: world.observability
        )
        if handler == .naive {
            try await world.direct.withTransaction { tx in try await tx.put("wallets", id: "main", initial.bytes) }
        } else {
            _ = try await Records(store: world.direct, collection: "wallets", clock: world.clock, observability: world.observability)
                .create("main", initial)
        }
        struct Insufficient: Error {}
        clients(world, count: count) { index in
            let amount = amounts[index]
            switch handler {
            case .naive:
                let balance = try await naiveRead(world, "wallets", "main", as: "balance")
                try await world.work(Int64(world.choices.below(10)), "decide to withdraw \(amount)")
                guard balance >= amount else { return world.annotate("→ refused") }
                try await naiveWrite(world, "wallets", "main", balance - amount, as: "balance")
            case .guarded:
                do {
                    try await records.update("main", as: Int64.self) { balance in
                        guard balance >= amount else { throw Insufficient() }
                        balance -= amount
                    }
                } catch is Insufficient {
                    return world.annotate("→ refused: insufficient funds")
                }
            }
            accepted.sum += amount
        }
        return {
            let balance =
                handler == .naive
                ? Int64(bytes: try await world.rows(in: "wallets")["main"])
                : try await Records(store: world.direct, collection: "wallets", clock: world.clock, observability: world.observability)
                    .read("main", as: Int64.self)?.value ?? 0
            var violations: [Violation] = []
            if balance != initial - accepted.sum {
                violations.append(
                    Violation(
                        "money-conserved",
                        "balance \(balance), but \(initial) − \(accepted.sum) accepted = \(initial - accepted.sum)"
                    )
                )
            }
            if balance < 0 || accepted.sum > initial {
                violations.append(Violation("no-overdraft", "accepted \(accepted.sum) from a balance of \(initial)"))
            }
            return violations
        }
    }

    static func retryPolicy(_ world: World) -> RetryPolicy {
        var policy = RetryPolicy()
        policy.seed = world.choices.draw()
        return policy
    }

    // MARK: Inventory

    static let inventory = Scenario(
        name: "inventory",
        race: "lost-update",
        summary: "buyers read the stock level and write it back decremented",
        invariants: ["no-oversell", "stock-conserved"],
        faults: faults,
        pauseLength: 500
    ) { world, handler, _ in
        let stock = Int64(world.choices.inRange(1...5))
        let count = world.choices.inRange(2...6)
        let quantities = (0..<count).map { _ in Int64(world.choices.inRange(1...2)) }
        world.setting("stock \(stock), orders for \(quantities.map(String.init).joined(separator: ", "))")
        let sold = Notebook()
        let counters = Counters(store: world.store, clock: world.clock, observability: world.observability)
        if handler == .naive {
            try await world.direct.withTransaction { tx in try await tx.put("stock", id: "sku", stock.bytes) }
        } else {
            _ = try await Counters(store: world.direct, clock: world.clock, observability: world.observability).create(
                "sku",
                value: stock,
                floor: 0
            )
        }
        clients(world, count: count) { index in
            let quantity = quantities[index]
            switch handler {
            case .naive:
                let level = try await naiveRead(world, "stock", "sku", as: "stock")
                guard level >= quantity else { return world.annotate("→ sold out") }
                try await naiveWrite(world, "stock", "sku", level - quantity, as: "stock")
            case .guarded:
                guard case .applied = try await counters.adjust("sku", by: -quantity) else { return }
            }
            sold.sum += quantity
        }
        return {
            let level =
                handler == .naive
                ? Int64(bytes: try await world.rows(in: "stock")["sku"])
                : try await counterValue(world, "sku")
            var violations: [Violation] = []
            if sold.sum > stock { violations.append(Violation("no-oversell", "sold \(sold.sum) of \(stock)")) }
            if level != stock - sold.sum {
                violations.append(Violation("stock-conserved", "stock \(level), but \(stock) − \(sold.sum) sold = \(stock - sold.sum)"))
            }
            return violations
        }
    }

    /// A counter's value, read outside the run.
    static func counterValue(_ world: World, _ name: String) async throws -> Int64 {
        try await Counters(store: world.direct, clock: world.clock, observability: world.observability).counter(name)?.value ?? 0
    }

    // MARK: Quota

    static let quota = Scenario(
        name: "quota",
        race: "lost-update",
        summary: "requests read the quota used this window and write it back plus one",
        invariants: ["quota-respected", "usage-counted"],
        faults: faults,
        pauseLength: 500
    ) { world, handler, _ in
        let limit = Int64(world.choices.inRange(1...3))
        let count = world.choices.inRange(2...6)
        world.setting("limit \(limit) per hour, \(counted(count, "request"))")
        let granted = Notebook()
        let counters = Counters(store: world.store, clock: world.clock, observability: world.observability)
        clients(world, count: count) { _ in
            switch handler {
            case .naive:
                let used = try await naiveRead(world, "quota", "api", as: "used")
                guard used < limit else { return world.annotate("→ over quota") }
                try await naiveWrite(world, "quota", "api", used + 1, as: "used")
            case .guarded:
                guard case .granted = try await counters.consume("api", limit: limit, window: .seconds(3_600)) else { return }
            }
            granted.sum += 1
        }
        return {
            let used: Int64
            if handler == .naive {
                used = Int64(bytes: try await world.rows(in: "quota")["api"])
            } else {
                used =
                    try await Counters(store: world.direct, clock: world.clock, observability: world.observability).quota("api")?.used ?? 0
            }
            var violations: [Violation] = []
            if granted.sum > limit { violations.append(Violation("quota-respected", "granted \(granted.sum) with a limit of \(limit)")) }
            if used != granted.sum { violations.append(Violation("usage-counted", "recorded \(used) uses, granted \(granted.sum)")) }
            return violations
        }
    }

    // MARK: Rate limit

    static let rateLimit = Scenario(
        name: "rate-limit",
        race: "lost-update",
        summary: "a rate limiter's hit counter is read and written back plus one by every request",
        invariants: ["no-lost-increment", "limit-respected"],
        faults: faults,
        pauseLength: 500
    ) { world, handler, _ in
        let limit = Int64(world.choices.inRange(2...8))
        let count = world.choices.inRange(2...6)
        world.setting("limit \(counted(Int(limit), "hit")), \(counted(count, "request"))")
        let allowed = Notebook()
        let counters = Counters(store: world.store, clock: world.clock, observability: world.observability)
        if handler == .guarded {
            _ = try await Counters(store: world.direct, clock: world.clock, observability: world.observability).create(
                "hits",
                value: 0,
                floor: 0,
                ceiling: limit
            )
        }
        clients(world, count: count) { _ in
            switch handler {
            case .naive:
                let hits = try await naiveRead(world, "limits", "hits", as: "hits")
                guard hits < limit else { return world.annotate("→ limited") }
                try await naiveWrite(world, "limits", "hits", hits + 1, as: "hits")
            case .guarded:
                guard case .applied = try await counters.adjust("hits", by: 1) else { return }
            }
            allowed.sum += 1
        }
        return {
            let hits =
                handler == .naive
                ? Int64(bytes: try await world.rows(in: "limits")["hits"])
                : try await counterValue(world, "hits")
            var violations: [Violation] = []
            if hits != allowed.sum { violations.append(Violation("no-lost-increment", "counted \(hits) hits, allowed \(allowed.sum)")) }
            if allowed.sum > limit { violations.append(Violation("limit-respected", "allowed \(allowed.sum) with a limit of \(limit)")) }
            return violations
        }
    }

    // MARK: Seat reservation

    static let seat = Scenario(
        name: "seat-reservation",
        race: "lost-update",
        summary: "buyers check that a seat is free, then book it",
        invariants: ["seat-sold-once"],
        faults: faults,
        pauseLength: 500
    ) { world, handler, _ in
        let seats = world.choices.inRange(1...3)
        let count = world.choices.inRange(2...6)
        let wanted = (0..<count).map { _ in world.choices.below(seats) }
        world.setting("\(counted(seats, "seat")), buyers want seats \(wanted.map { String($0 + 1) }.joined(separator: ", "))")
        let bookings = Notebook()
        let reservations = Reservations(store: world.store, clock: world.clock, observability: world.observability)
        if handler == .guarded {
            for seat in 1...seats {
                _ = try await Reservations(store: world.direct, clock: world.clock, observability: world.observability).createResource(
                    "seat-\(seat)",
                    capacity: 1
                )
            }
        }
        clients(world, count: count) { index in
            let seat = "seat-\(wanted[index] + 1)"
            let buyer = "buyer-\(index + 1)"
            switch handler {
            case .naive:
                let taken = try await world.store.withTransaction { tx in try await tx.get("seats", id: seat) != nil }
                world.annotate(taken ? "→ taken" : "→ free")
                guard !taken else { return }
                try await world.work(Int64(world.choices.below(10)), "pay for \(seat)")
                try await world.store.withTransaction { tx in try await tx.put("seats", id: seat, Array(buyer.utf8)) }
            case .guarded:
                guard case .hold = try await reservations.hold(seat, key: buyer, timeToLive: .seconds(60)) else { return }
                try await world.work(Int64(world.choices.below(10)), "pay for \(seat)")
                guard case .hold = try await reservations.confirm(key: buyer) else { return }
            }
            bookings.counts[seat, default: 0] += 1
        }
        return {
            bookings.counts.sorted { $0.key < $1.key }.filter { $0.value > 1 }.map {
                Violation("seat-sold-once", "\($0.key) was sold to \($0.value) buyers")
            }
        }
    }
}
