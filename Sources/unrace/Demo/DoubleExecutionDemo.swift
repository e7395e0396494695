import Foundation
import Unrace
import UnraceSQL

/// One measured run of a handler: what the queue delivered and what the database holds after.
struct HandlerRun: Sendable {
    /// Operations whose effect was written more than once, counted by surplus writes.
    var anomalies: Int
    /// Deliveries the queue made, redeliveries included.
    var deliveries: Int
    /// Effect rows written.
    var effects: Int
    /// Operations that ended with no effect at all (must be 0 for both handlers).
    var missing: Int
    /// Deliveries answered from a stored outcome (guarded only).
    var replays: Int

    var counts: [String: Int] {
        ["anomalies": anomalies, "deliveries": deliveries, "effects": effects, "missing": missing, "replays": replays]
    }
}

/// The double-execution race: an at-least-once queue, workers whose processing sometimes
/// outlasts the visibility timeout, and the seed's five operations.
///
/// The naive handler does what many "idempotent" consumers do: it checks whether the effect
/// exists, processes, then writes the effect — two steps with time between them. The guarded
/// handler writes the effect inside ``Operations/perform(key:scope:fingerprint:whenInProgress:_:)``.
struct DoubleExecutionDemo: StoreJob {
    static let cases = ["order-creation", "payment-capture", "email-sending", "inventory-reservation", "coupon-redemption"]

    struct Variant: Sendable {
        var name: String
        var consumers: Int
        var visibilityTimeout: Duration
        var addedDelay: Duration
    }

    static let visibilityTimeout = Duration.milliseconds(15)
    static let baseline = Variant(name: "baseline", consumers: 8, visibilityTimeout: visibilityTimeout, addedDelay: .zero)
    /// The mistaken fixes of the seed, each applied alone to payment capture.
    static let mistakenFixes = [
        Variant(name: "longer visibility timeout (x4)", consumers: 8, visibilityTimeout: visibilityTimeout * 4, addedDelay: .zero),
        Variant(name: "fewer consumers (8 -> 2)", consumers: 2, visibilityTimeout: visibilityTimeout, addedDelay: .zero),
        Variant(name: "added delay (60 ms, redelivery)", consumers: 8, visibilityTimeout: visibilityTimeout, addedDelay: .milliseconds(60)),
    ]

    let operations: Int
    let seed: UInt64
    let progress: Bool

    func run<S: SQLStore>(_ store: S) async throws -> DemoSection {
        var rows: [DemoRow] = []
        var plan = Self.cases.map { ($0, Self.baseline) }
        plan += Self.mistakenFixes.map { ("payment-capture", $0) }
        for (caseName, variant) in plan {
            if progress {
                FileHandle.standardError.write(Data("  running \(caseName), \(variant.name)…\n".utf8))
            }
            let naive = try await runOnce(store, caseName: caseName, variant: variant, guarded: false)
            let guarded = try await runOnce(store, caseName: caseName, variant: variant, guarded: true)
            rows.append(
                DemoRow(
                    race: "double-execution",
                    caseName: caseName,
                    variant: variant.name,
                    operations: operations,
                    settings: ["consumers": variant.consumers, "visibilityTimeoutMs": Int(variant.visibilityTimeout.wholeMilliseconds)],
                    naive: naive.counts,
                    guarded: guarded.counts,
                    shown: naive.deliveries
                )
            )
        }
        return DemoSection(
            title: "The double-execution race",
            explanation: [
                "An at-least-once queue redelivers any message not acknowledged within its visibility timeout;",
                "one handler in five outlasts it. The naive handler checks \"already done?\", works, then writes;",
                "the guarded handler writes its effect through Operations.perform.",
            ],
            columns: ("queue", "naive deliveries", "duplicate effects"),
            rows: rows
        )
    }

    /// How long processing a delivery takes: mostly short, with a tail (one in five) that
    /// outlasts the visibility timeout — a slow provider, a GC pause, a cold cache.
    static func processingTime(seed: UInt64, message: Int, attempt: Int) -> Duration {
        var generator = SeededGenerator(seed: seed &+ UInt64(message) &* 1_000_003 &+ UInt64(attempt) &* 7_919)
        if generator.chance(1, in: 5) {
            return .milliseconds(generator.int(in: 20...150))
        }
        return .milliseconds(generator.int(in: 1...4))
    }

    private func runOnce<S: SQLStore>(_ store: S, caseName: String, variant: Variant, guarded: Bool) async throws -> HandlerRun {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let table = "demo_effects_\(suffix)"
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (operation TEXT NOT NULL, delivery INTEGER NOT NULL)")
        }
        let ops = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope("demo-\(suffix)")
        let queue = AtLeastOnceQueue(messages: operations, visibilityTimeout: variant.visibilityTimeout)
        // Each case draws its own processing times from the demo's seed.
        let seed = self.seed &+ UInt64(Self.cases.firstIndex(of: caseName) ?? 0) &* 0x5851_F42D
        let replays = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<variant.consumers {
                group.addTask {
                    var replays = 0
                    while true {
                        switch await queue.receive() {
                        case .drained:
                            return replays
                        case .empty:
                            try await Task.sleep(for: .milliseconds(1))
                        case .delivery(let message, let attempt):
                            let operation = "\(caseName):\(message)"
                            // The seed's "added delay": wait before handling a redelivered message, in the
                            // hope that the first delivery finishes first (as the simulator's sweep does).
                            if variant.addedDelay > .zero, attempt > 1 {
                                try await Task.sleep(for: variant.addedDelay)
                            }
                            let work = Self.processingTime(seed: seed, message: message, attempt: attempt)
                            if guarded {
                                try await Task.sleep(for: work)
                                let receipt = try await ops.perform(key: operation, scope: scope) { tx in
                                    try await tx.execute(
                                        "INSERT INTO \(table) (operation, delivery) VALUES (?, ?)",
                                        [.text(operation), .int(attempt)]
                                    )
                                    return attempt
                                }
                                if receipt.isReplay { replays += 1 }
                            } else {
                                // "Has this already been done?" — then act, after the work.
                                let seen = try await store.withTransaction { tx in
                                    try await tx.query("SELECT 1 FROM \(table) WHERE operation = ?", [.text(operation)]).count
                                }
                                try await Task.sleep(for: work)
                                if seen == 0 {
                                    _ = try await store.withTransaction { tx in
                                        try await tx.execute(
                                            "INSERT INTO \(table) (operation, delivery) VALUES (?, ?)",
                                            [.text(operation), .int(attempt)]
                                        )
                                    }
                                }
                            }
                            await queue.ack(message)
                        }
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        let counts = try await store.withTransaction { tx in
            try await tx.query("SELECT COUNT(*) AS effects, COUNT(DISTINCT operation) AS distinct_ops FROM \(table)")
        }
        _ = try await store.withTransaction { tx in try await tx.execute("DROP TABLE \(table)") }
        let effects = Int(try counts[0].int64("effects"))
        let distinct = Int(try counts[0].int64("distinct_ops"))
        return HandlerRun(
            anomalies: effects - distinct,
            deliveries: await queue.deliveries,
            effects: effects,
            missing: operations - distinct,
            replays: replays
        )
    }
}
