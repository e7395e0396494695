import Unrace

/// The double-execution race: an at-least-once broker redelivers (a slow worker, a crash, a
/// retried publish) and two workers run the same business operation.
///
/// Local effects (a row written in the store) are guarded by ``Operations/perform(key:scope:fingerprint:whenInProgress:_:)``;
/// external ones (a payment gateway, a mail relay) by `begin` → call with the operation's
/// derived key → `complete`, the downstream system deduplicating on that key. The naive
/// handlers check first and act second, in two steps.
enum DoubleExecution {
    enum Effect {
        /// A row in the store: `table` is where the business write goes.
        case local(table: String)
        /// A call to an outside system, guarded with a derived idempotency key; `checkpoint`
        /// adds a recovery point before the call.
        case external(system: String, checkpoint: Bool)
    }

    static let invariant = "effects-at-most-once"

    static let scenarios: [Scenario] = [
        scenario("order-creation", "a redelivered CreateOrder inserts the order twice", .local(table: "orders")),
        scenario("payment-capture", "a redelivered CapturePayment charges the card twice", .external(system: "gateway", checkpoint: false)),
        scenario("email-sending", "a redelivered SendEmail sends the email twice", .external(system: "mailer", checkpoint: true)),
        scenario("inventory-reservation", "a redelivered ReserveStock reserves the items twice", .local(table: "reservations")),
        scenario("coupon-redemption", "a redelivered RedeemCoupon redeems the coupon twice", .local(table: "redemptions")),
    ]

    static func scenario(_ name: String, _ summary: String, _ effect: Effect) -> Scenario {
        Scenario(
            name: name,
            race: "double-execution",
            summary: summary,
            invariants: [invariant],
            faults: [.latency, .transient, .lostReply, .crash, .pause, .duplicatePublish, .slowWork],
            pauseLength: 3_000
        ) { world, handler, knobs in
            try await build(world, name: name, effect: effect, handler: handler, knobs: knobs)
        }
    }

    static func build(_ world: World, name: String, effect: Effect, handler: HandlerKind, knobs: Knobs) async throws -> Scenario.Checker {
        let operations = world.choices.inRange(1...8)
        let consumers = knobs.consumers ?? world.choices.inRange(2...6)
        let visibility = 100 * knobs.visibilityMultiplier
        let broker = Broker(world: world, visibilityTimeout: visibility)
        broker.createTopic("commands", partitions: 4)
        broker.subscribe(group: "workers", to: "commands")
        for index in 0..<operations {
            broker.preload(Broker.Message(id: "\(name):\(index)"), topic: "commands", partition: index)
        }
        let downstream = Downstream(
            world: world,
            name: {
                if case .external(let system, _) = effect { return system }
                return "none"
            }()
        )
        let effects = Notebook()
        world.setting(
            "\(counted(operations, "operation")), \(counted(consumers, "consumer")), 4 partitions, visibility \(visibility)ms"
        )

        for consumer in 1...consumers {
            let name = "worker-\(consumer)"
            broker.consume(as: name, topic: "commands", group: "workers") { delivery, incarnation in
                let operation = delivery.message.id
                if knobs.addedDelay > 0, delivery.attempt > 1 {
                    try await world.work(knobs.addedDelay, "wait before a redelivered message")
                }
                let work =
                    Int64(world.choices.inRange(5...30))
                    + (world.choices.chance(perMille: world.faults.slowWorkPerMille) ? Int64(world.choices.inRange(100...700)) : 0)
                switch (handler, effect) {
                case (.naive, .local(let table)):
                    if try await isDone(world, table, operation) { return }
                    try await world.work(work, "work on \(operation)")
                    try await world.store.withTransaction { tx in
                        try await tx.put(table, id: operation, [1])
                        try await tx.put("effects", id: "\(operation)#\(effects.next())", [])
                    }
                    world.annotate("→ done")
                case (.guarded, .local(let table)):
                    try await world.work(work, "work on \(operation)")
                    let operationsAPI = try world.operations(holder: "\(name).\(incarnation)", lease: .seconds(2))
                    let receipt = try await operationsAPI.perform(key: operation) { tx in
                        try await tx.put(table, id: operation, [1])
                        try await tx.put("effects", id: "\(operation)#\(effects.next())", [])
                        return "done"
                    }
                    if receipt.isReplay { world.annotate("(replayed)") }
                case (.naive, .external):
                    if try await isDone(world, "done", operation) { return }
                    try await world.work(work, "work on \(operation)")
                    try await downstream.call(operation, idempotencyKey: nil)
                    try await world.store.withTransaction { tx in try await tx.put("done", id: operation, [1]) }
                    world.annotate("→ marked done")
                case (.guarded, .external(_, let checkpoint)):
                    let operationsAPI = try world.operations(holder: "\(name).\(incarnation)", lease: .seconds(2))
                    switch try await operationsAPI.begin(key: operation) {
                    case .completed: return
                    case .inProgress, .fingerprintMismatch: throw RetryLater()
                    case .acquired(var handle):
                        try await world.work(work, "work on \(operation)")
                        if checkpoint { handle = try await operationsAPI.checkpoint(handle, recoveryPoint: "rendered") }
                        try await downstream.call(operation, idempotencyKey: handle.derivedKey("effect"))
                        try await operationsAPI.complete(handle, result: "done") { tx in try await tx.put("done", id: operation, [1]) }
                    }
                }
            }
        }

        /// The naive check: has this operation been done already?
        @Sendable func isDone(_ world: World, _ table: String, _ operation: String) async throws -> Bool {
            let done = try await world.store.withTransaction { tx in try await tx.get(table, id: operation) != nil }
            world.annotate(done ? "→ already done" : "→ not done yet")
            return done
        }

        // The run's history, checked by the same checker as `unrace check` and the fault run:
        // every effect the downstream system and the store recorded.
        return {
            var history: [HistoryEntry] = []
            for (operation, count) in downstream.effects.sorted(by: { $0.key < $1.key }) {
                history += Array(repeating: .effect(operation, actor: downstream.name), count: count)
            }
            for id in try await world.rows(in: "effects").keys.sorted() {
                history.append(.effect(String(id.prefix { $0 != "#" }), actor: "store"))
            }
            return HistoryChecker.check(history).duplicateEffects.map {
                Violation(invariant, "\($0.operation) took effect \($0.count) times")
            }
        }
    }
}

/// An outside system (a payment gateway, a mail relay) that deduplicates on an idempotency key
/// when it is given one, as the real ones do. A call is a scheduling point; its reply can be lost
/// after the effect happened.
final class Downstream: @unchecked Sendable {
    unowned(unsafe) let world: World
    let name: String
    private(set) var effects: [String: Int] = [:]
    private var keys: Set<String> = []

    init(world: World, name: String) {
        self.world = world
        self.name = name
    }

    func call(_ operation: String, idempotencyKey: String?) async throws {
        try await world.point(0, "\(name) \(operation)\(idempotencyKey == nil ? "" : " key \(idempotencyKey!.prefix(12))…")")
        if let idempotencyKey {
            guard keys.insert(idempotencyKey).inserted else {
                world.annotate("→ deduplicated")
                return
            }
        }
        effects[operation, default: 0] += 1
        if world.faults.lostReplyPerMille > 0, world.choices.chance(perMille: world.faults.lostReplyPerMille) {
            world.annotate("✓ done, reply lost")
            throw UnraceError(.storeUnavailable, "simulated: the downstream reply was lost")
        }
    }
}
