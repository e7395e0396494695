import Foundation
import Unrace
import UnraceSQL
import UnraceSimulation

/// The out-of-order race: order lifecycles (created, paid, shipped, cancelled) delivered shuffled
/// and duplicated, applied by a naive consumer and through the ``Inbox``.
struct OutOfOrderDemo: StoreJob {
    let orders: Int
    let seed: UInt64

    func run<S: SQLStore>(_ store: S) async throws -> DemoSection {
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let streams = try OrderStreams.streams(orders: orders, seed: seed, prefix: "demo_\(suffix)")
        let deliveries = OrderStreams.deliveries(of: streams, seed: seed)
        let expected = OrderStreams.inOrderFinalStates(streams)

        let naive = SQLOrderProjection(prefix: "demo_naive_\(suffix)")
        try await naive.createTables(store)
        for event in deliveries {
            _ = try await store.withTransaction { tx in try await naive.applyNaively(tx, event) }
        }
        let naiveAnomalies = OrderStreams.anomalies(actual: try await naive.finalStates(store), expected: expected)
        let naiveRuns = try await naive.handlerRuns(store)

        let guarded = SQLOrderProjection(prefix: "demo_inbox_\(suffix)")
        try await guarded.createTables(store)
        let inbox = try Inbox(store: store)
        var outcomes: [String: Int] = [:]
        for event in deliveries {
            let outcome = try await inbox.receive(event) { tx, event in try await guarded.apply(tx, event) }
            outcomes[outcome.name, default: 0] += 1
        }
        let actual = try await guarded.finalStates(store)
        let guardedAnomalies = OrderStreams.anomalies(actual: actual, expected: expected)
        let guardedRuns = try await guarded.handlerRuns(store)
        try await naive.dropTables(store)
        try await guarded.dropTables(store)

        func counts(_ anomalies: OrderStreams.Anomalies, _ runs: (runs: Int, distinct: Int)) -> [String: Int] {
            [
                "anomalies": anomalies.total, "resurrected": anomalies.resurrected,
                "shippedAfterCancel": anomalies.shippedAfterCancel, "regressed": anomalies.regressed,
                "handlerRuns": runs.runs, "reapplied": runs.runs - runs.distinct,
            ]
        }
        var guardedCounts = counts(guardedAnomalies, guardedRuns)
        guardedCounts["anomalies"] = guardedAnomalies.total + guardedCounts["reapplied"]!
        guardedCounts["matchesInOrder"] = actual == expected ? 1 : 0
        for (name, count) in outcomes { guardedCounts[name] = count }
        var naiveCounts = counts(naiveAnomalies, naiveRuns)
        naiveCounts["anomalies"] = naiveAnomalies.total + naiveCounts["reapplied"]!
        let row = DemoRow(
            race: "out-of-order",
            caseName: "order-lifecycle",
            variant: "shuffled, 1 in 5 duplicated",
            operations: orders,
            settings: ["deliveries": deliveries.count],
            naive: naiveCounts,
            guarded: guardedCounts,
            shown: deliveries.count
        )
        return DemoSection(
            title: "The out-of-order race",
            explanation: [
                "Each order's events (created, paid, shipped or cancelled) arrive shuffled across partitions, some twice.",
                "The naive consumer writes the state each event names; the inbox applies each stream in sequence",
                "order, parks early events and absorbs impossible moves. Naive: \(naiveAnomalies.resurrected) resurrected, "
                    + "\(naiveAnomalies.shippedAfterCancel) shipped after cancel, \(naiveAnomalies.regressed) regressed, "
                    + "\(naiveRuns.runs - naiveRuns.distinct) events applied twice.",
                "Inbox: final states \(actual == expected ? "equal" : "DIFFER FROM") in-order application; "
                    + "\(outcomes["parked", default: 0]) parked, \(outcomes["duplicate", default: 0]) duplicates reported.",
            ],
            columns: ("delivery", "deliveries", "wrong or re-applied"),
            rows: [row]
        )
    }
}

extension InboxOutcome {
    var name: String {
        switch self {
        case .applied: "applied"
        case .rejected: "rejected"
        case .parked: "parked"
        case .duplicate: "duplicate"
        case .stale: "stale"
        }
    }
}
