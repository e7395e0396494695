import Unrace

/// The out-of-order race: an order's events (created, paid, shipped, cancelled) are spread over
/// partitions, duplicated and redelivered, so OrderCancelled can arrive before OrderCreated.
///
/// The naive consumer writes the state each event names. The guarded one receives through the
/// ``Inbox`` (once per event id, in stream order, early events parked) and applies the order
/// ``Lifecycle``, which refuses impossible moves.
enum OutOfOrder {
    static let scenario = Scenario(
        name: "order-lifecycle",
        race: "out-of-order",
        summary: "order events arrive reordered across partitions and duplicated",
        invariants: ["final-state-in-order", "no-resurrection", "every-event-delivered"],
        faults: [.latency, .transient, .lostReply, .crash, .pause, .duplicatePublish, .slowWork],
        pauseLength: 1_000
    ) { world, handler, knobs in
        let orders = world.choices.inRange(1...5)
        let partitions = world.choices.inRange(2...4)
        let consumers = knobs.consumers ?? world.choices.inRange(1...4)
        let streams = try OrderStreams.streams(orders: orders, seed: world.choices.draw())
        let broker = Broker(world: world, visibilityTimeout: 200 * knobs.visibilityMultiplier)
        broker.createTopic("order-events", partitions: partitions)
        broker.subscribe(group: "projection", to: "order-events")
        broker.subscribe(group: "audit", to: "order-events")
        // The producer spreads events over partitions round-robin, not by order id: each
        // partition keeps its own order, but one order's events land on several.
        var position = 0
        for event in streams.joined() {
            broker.preload(
                Broker.Message(id: event.id, stream: event.stream, sequence: event.sequence, type: event.type),
                topic: "order-events",
                partition: position
            )
            position += 1
        }
        world.setting(
            "\(counted(orders, "order")), \(counted(position, "event")), \(partitions) partitions, \(counted(consumers, "projection consumer")), 1 audit consumer"
        )
        // A second consumer group reads the same topic on its own: it must see every event.
        let audited = Notebook()
        broker.consume(as: "auditor", topic: "order-events", group: "audit") { delivery, _ in
            audited.counts[delivery.message.id, default: 0] += 1
        }
        let history = Notebook()
        let inbox = try Inbox(
            store: world.store,
            configuration: {
                var configuration = InboxConfiguration()
                configuration.clock = world.clock
                return configuration
            }(),
            observability: world.observability
        )

        /// Moves an order to `target`, noting the move in the history (in the same transaction).
        @Sendable func move(_ tx: SimulationTransaction, _ order: String, from: String?, to target: String) async throws {
            try await tx.put("orders", id: order, Array(target.utf8))
            try await tx.put("history", id: "\(order)#\(String(history.next()).leftPadded(8))", Array("\(from ?? "new")>\(target)".utf8))
        }

        for consumer in 1...consumers {
            broker.consume(as: "consumer-\(consumer)", topic: "order-events", group: "projection") { delivery, _ in
                let message = delivery.message
                try await world.work(Int64(world.choices.inRange(1...10)), "handle \(message.type) for \(message.stream)")
                switch handler {
                case .naive:
                    try await world.store.withTransaction { tx in
                        let current = try await tx.get("orders", id: message.stream).map { String(decoding: $0, as: UTF8.self) }
                        try await move(tx, message.stream, from: current, to: OrderStreams.naiveTarget[message.type] ?? "unknown")
                    }
                case .guarded:
                    let event = try InboxEvent(
                        id: message.id,
                        stream: message.stream,
                        sequence: message.sequence,
                        type: message.type,
                        payload: []
                    )
                    _ = try await inbox.receive(event) { tx, event in
                        let current = try await tx.get("orders", id: event.stream).map { String(decoding: $0, as: UTF8.self) }
                        switch OrderStreams.lifecycle.applyWithPlaceholder(event.type, to: current) {
                        case .moved(_, let target):
                            try await move(tx, event.stream, from: current, to: target)
                            return .applied
                        case .rejected(let reason), .absorbed(let reason):
                            return .rejected(reason: reason)
                        }
                    }
                }
            }
        }

        return {
            var violations: [Violation] = []
            var resurrected: Set<String> = []
            for (id, move) in try await world.rows(in: "history").sorted(by: { $0.key < $1.key }) {
                let parts = String(decoding: move, as: UTF8.self).split(separator: ">").map(String.init)
                if OrderStreams.lifecycle.terminal.contains(parts[0]), parts[1] != parts[0] {
                    resurrected.insert("\(id.prefix { $0 != "#" }) \(parts[0])→\(parts[1])")
                }
            }
            violations += resurrected.sorted().map { Violation("no-resurrection", "moved out of a terminal state: \($0)") }
            let events = Set(streams.joined().map(\.id))
            if broker.isDrained(topic: "order-events", group: "audit"), Set(audited.counts.keys) != events {
                violations.append(
                    Violation("every-event-delivered", "the audit group saw \(audited.counts.count) of \(events.count) events")
                )
            }
            guard broker.isDrained(topic: "order-events", group: "projection") else { return violations }  // the run ended first
            let expected = OrderStreams.inOrderFinalStates(streams)
            let actual = try await world.rows(in: "orders").mapValues { String(decoding: $0, as: UTF8.self) }
            for (order, state) in expected.sorted(by: { $0.key < $1.key }) where actual[order] != state {
                violations.append(Violation("final-state-in-order", "\(order) ended \(actual[order] ?? "new"), in order it ends \(state)"))
            }
            return violations
        }
    }
}
