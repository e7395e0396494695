public import Unrace

/// Order lifecycles as event streams: the out-of-order race's test data, shared by the demo,
/// the tests and the simulator.
///
/// Each order's stream is one of the paths a shop produces — created, paid, shipped; created and
/// cancelled; paid then cancelled; and a warehouse's OrderShipped that lands after the cancel
/// (an impossible move the lifecycle must absorb).
public enum OrderStreams {
    /// The order lifecycle: `new` → `created` → `paid` → `shipped`, with `cancelled` from
    /// `created` or `paid`. `shipped` and `cancelled` are terminal.
    public static let lifecycle: Lifecycle = {
        do {
            return try Lifecycle(
                initial: "new",
                terminal: ["shipped", "cancelled"],
                transitions: [
                    .init(from: "new", on: "OrderCreated", to: "created"),
                    .init(from: "created", on: "PaymentCaptured", to: "paid"),
                    .init(from: "paid", on: "OrderShipped", to: "shipped"),
                    .init(from: "created", on: "OrderCancelled", to: "cancelled"),
                    .init(from: "paid", on: "OrderCancelled", to: "cancelled"),
                ]
            )
        } catch {
            preconditionFailure("the order lifecycle is valid: \(error)")
        }
    }()

    /// The state a naive consumer writes for each event type, ignoring the current state.
    public static let naiveTarget: [String: String] = [
        "OrderCreated": "created", "PaymentCaptured": "paid", "OrderShipped": "shipped", "OrderCancelled": "cancelled",
    ]

    static let paths: [[String]] = [
        ["OrderCreated", "PaymentCaptured", "OrderShipped"],
        ["OrderCreated", "OrderCancelled"],
        ["OrderCreated", "PaymentCaptured", "OrderCancelled"],
        ["OrderCreated", "PaymentCaptured", "OrderCancelled", "OrderShipped"],
        ["OrderCreated", "PaymentCaptured"],
    ]

    /// `orders` order streams, each in sequence order, with ids unique per `prefix`.
    public static func streams(orders: Int, seed: UInt64, prefix: String = "order") throws -> [[InboxEvent]] {
        var generator = SeededGenerator(seed: seed)
        return try (0..<orders).map { index in
            let path = paths[generator.int(in: 0...(paths.count - 1))]
            let stream = "\(prefix)-\(index)"
            return try path.enumerated().map { offset, type in
                try InboxEvent(
                    id: "\(stream)-e\(offset + 1)",
                    stream: stream,
                    sequence: Int64(offset + 1),
                    type: type,
                    payload: Array(type.utf8)
                )
            }
        }
    }

    /// Every event of `streams` in a random order, with about one in `duplicateOneIn` delivered
    /// twice: what an at-least-once broker with several partitions hands a consumer.
    public static func deliveries(of streams: [[InboxEvent]], seed: UInt64, duplicateOneIn: Int = 5) -> [InboxEvent] {
        var generator = SeededGenerator(seed: seed ^ 0xD1B5_4A32_D192_ED03)
        var all: [InboxEvent] = []
        for event in streams.joined() {
            all.append(event)
            if generator.chance(1, in: duplicateOneIn) { all.append(event) }
        }
        return generator.shuffled(all)
    }

    /// Each order's final state when its events are applied in sequence order through the
    /// lifecycle: the correct answer.
    public static func inOrderFinalStates(_ streams: [[InboxEvent]]) -> [String: String] {
        var states: [String: String] = [:]
        for stream in streams {
            var state: String?
            for event in stream {
                if case .moved(_, let target) = lifecycle.applyWithPlaceholder(event.type, to: state) { state = target }
            }
            if let first = stream.first, let state { states[first.stream] = state }
        }
        return states
    }

    /// How a consumer's final states differ from the correct ones.
    public struct Anomalies: Sendable, Hashable, Codable {
        /// Orders that should be cancelled but are live again (created or paid).
        public var resurrected = 0
        /// Orders that should be cancelled but are shipped.
        public var shippedAfterCancel = 0
        /// Orders that ended in an earlier state than their last valid one.
        public var regressed = 0
        /// The total.
        public var total: Int { resurrected + shippedAfterCancel + regressed }

        /// Creates an empty count.
        public init() {}
    }

    static let rank = ["new": 0, "created": 1, "paid": 2, "shipped": 3, "cancelled": 3]

    /// Counts the anomalies of `actual` final states against `expected` ones.
    public static func anomalies(actual: [String: String], expected: [String: String]) -> Anomalies {
        var anomalies = Anomalies()
        for (order, want) in expected {
            let got = actual[order] ?? "new"
            guard got != want else { continue }
            if want == "cancelled" {
                if got == "shipped" { anomalies.shippedAfterCancel += 1 } else { anomalies.resurrected += 1 }
            } else {
                anomalies.regressed += 1
            }
        }
        return anomalies
    }
}
