import ArgumentParser
import CoreMetrics
import Foundation
import InMemoryTracing
import Prometheus
import Tracing
import Unrace
import UnraceSQL
import UnraceSQLite

/// `unrace bench`: guarded against unguarded throughput, measured in the same run.
///
/// Machines here are shared and noisy, so every figure is a ratio against a baseline measured
/// in the same process, in alternating rounds (baseline, guarded, baseline, guarded, …), using
/// the median round of each.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure Unrace's guards against the same writes without them, in the same run.",
        subcommands: [
            OperationsBenchCommand.self, InboxBenchCommand.self, LedgerBenchCommand.self, HTTPBenchCommand.self,
            ObservabilityBenchCommand.self,
        ],
        defaultSubcommand: OperationsBenchCommand.self
    )
}

struct OperationsBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operations",
        abstract: "Operations.perform against the same business write without Unrace."
    )

    @OptionGroup var database: DatabaseOption
    @OptionGroup var sweep: SweepOptions
    @Option(help: "Transactions per round (100 to 100000).")
    var transactions = 2_000
    @Option(help: "The business write: insert (one INSERT) or order (an order, its lines and a stock update).")
    var workload = OperationsBench.Workload.insert
    @Flag(
        help:
            "Also run perform with metrics (a Prometheus registry) and tracing (a recording tracer) switched on, and report its cost against perform without them."
    )
    var observed = false
    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (100...100_000).contains(transactions) else { throw ValidationError("--transactions must be 100 to 100000") }
    }

    var rounds: Int { sweep.rounds }
    var callerCounts: [Int] { sweep.callerCounts }

    func run() async throws {
        let job = OperationsBench(
            workload: workload,
            callerCounts: callerCounts,
            transactions: transactions,
            rounds: rounds,
            observed: observed
        )
        let results = try await withDatabase(database.location, logger: cliLogger("unrace.bench"), job)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(["results": results]), as: UTF8.self))
            return
        }
        print("unrace bench: Operations.perform against the same business write without Unrace")
        print("(workload \(workload.rawValue): \(workload.summary))")
        print("(\(transactions) transactions per round, \(rounds) alternating rounds of each, median round)")
        print("")
        print("backend    callers   unguarded tx/s   same statements tx/s   guarded tx/s   guarded cost ×   Unrace's own ×")
        for result in results {
            print(
                String(
                    format: "%-10@ %7d   %14.0f   %20.0f   %12.0f   %14.2f   %14.2f",
                    result.backend as NSString,
                    result.callers,
                    result.unguardedPerSecond,
                    result.statementsPerSecond,
                    result.guardedPerSecond,
                    result.costRatio,
                    result.ownRatio
                )
            )
        }
        print("")
        print("same statements: perform's own SQL (claim, the write, completion) sent by hand through the same client;")
        print("Unrace's own ×: guarded ÷ same statements, the cost of Unrace beyond the statements it must send.")
        guard observed else { return }
        print("")
        print("backend    callers   guarded tx/s   observed tx/s   observability cost ×")
        for result in results {
            guard let rate = result.observedPerSecond, let ratio = result.observedRatio else { continue }
            print(
                String(
                    format: "%-10@ %7d   %12.0f   %13.0f   %20.3f",
                    result.backend as NSString,
                    result.callers,
                    result.guardedPerSecond,
                    rate,
                    ratio
                )
            )
        }
        print("observed: the same perform with a Prometheus metrics factory and a recording tracer, against the")
        print("process defaults (nothing bootstrapped: no-op metrics and spans); ×: guarded ÷ observed.")
    }
}

/// `--callers 1,16` and `--rounds N`: the caller counts a benchmark sweeps and how many
/// alternating rounds of each kind it takes the median of.
struct SweepOptions: ParsableArguments {
    @Option(help: "Concurrent callers, comma separated (each 1 to 256).")
    var callers = "1,16"
    @Option(help: "Rounds of each kind, alternated (1 to 50).")
    var rounds = 5

    /// The caller counts; `nil` stands for an entry that is not a whole number (refused by validate).
    private var parsedCallerCounts: [Int?] {
        callers.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    var callerCounts: [Int] { parsedCallerCounts.compactMap { $0 } }

    func validate() throws {
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1 to 50") }
        let counts = parsedCallerCounts
        guard !counts.isEmpty, counts.allSatisfy({ $0.map { (1...256).contains($0) } ?? false }) else {
            throw ValidationError("--callers must list numbers from 1 to 256")
        }
    }
}

struct BenchResult: Codable, Sendable {
    var backend: String
    /// The business write both paths run: `insert` or `order`.
    var workload: String
    var callers: Int
    var unguardedPerSecond: Double
    var guardedPerSecond: Double
    /// perform's own statements (the claim, the business write, the completion) sent by hand in
    /// one transaction through the same client: the floor for a correct protocol on this client.
    var statementsPerSecond: Double
    /// How many times longer a guarded transaction takes than an unguarded one.
    var costRatio: Double
    /// How many times longer a guarded transaction takes than the same statements by hand:
    /// what Unrace adds of its own.
    var ownRatio: Double
    /// With `--observed`: guarded transactions per second with metrics and tracing switched on.
    var observedPerSecond: Double? = nil
    /// With `--observed`: how many times longer an observed guarded transaction takes than one
    /// reporting to nothing.
    var observedRatio: Double? = nil
}

struct OperationsBench: StoreJob {
    /// The business transaction both paths run; `perform` adds its record to it.
    enum Workload: String, CaseIterable, ExpressibleByArgument {
        /// One two-column INSERT: the smallest write, so the record's share of the cost is the largest.
        case insert
        /// An order row, its three lines in one INSERT, and a conditional stock decrement:
        /// the seed's order creation, three statements.
        case order

        var summary: String {
            switch self {
            case .insert: "one INSERT"
            case .order: "INSERT order, INSERT 3 lines, UPDATE stock … WHERE available >= quantity"
            }
        }
    }

    /// Stock rows the order workload spreads its decrements over, so 16 callers rarely queue on one row lock.
    static let stockRows = 64

    let workload: Workload
    let callerCounts: [Int]
    let transactions: Int
    let rounds: Int
    var observed = false

    func run<S: SQLStore>(_ store: S) async throws -> [BenchResult] {
        let table = "bench_\(UUID().uuidString.prefix(8).lowercased())"
        try await createTables(store, table)
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        // The observed path: a real metrics backend (what `unrace serve` exports) and a tracer
        // that records every span into a bounded buffer, as an exporter would.
        let tracer = RecordingTracer()
        let observedOperations = try Operations(
            store: store,
            lease: .seconds(30),
            retention: .seconds(3_600),
            observability: Observability(metricsFactory: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()), tracer: tracer)
        )
        let scope = try Scope("bench-\(table)")
        var results: [BenchResult] = []
        var serial = 0
        for callers in callerCounts {
            let warm = serial
            // A short warm-up of both paths (connections, statement caches, page cache).
            _ = try await Bench.measure(callers: callers, count: min(200, transactions)) { id in
                try await unguarded(store, table, "warm-u-\(callers)-\(warm)-\(id)", id)
            }
            _ = try await Bench.measure(callers: callers, count: min(200, transactions)) { id in
                try await guarded(operations, scope, table, "warm-g-\(callers)-\(warm)-\(id)", id)
            }
            _ = try await Bench.measure(callers: callers, count: min(200, transactions)) { id in
                try await statements(store, scope, table, "warm-s-\(callers)-\(warm)-\(id)", id)
            }
            if observed {
                _ = try await Bench.measure(callers: callers, count: min(200, transactions)) { id in
                    try await guarded(observedOperations, scope, table, "warm-o-\(callers)-\(warm)-\(id)", id)
                }
            }
            let paths = observed ? 4 : 3
            var plain: [Double] = []
            var byHand: [Double] = []
            var guardedRates: [Double] = []
            var observedRates: [Double] = []
            for index in 0..<rounds {
                serial += 1
                let round = serial
                // The three paths take turns going first, so none always runs in the wake of
                // another (its dead rows, its autovacuum, its checkpoint).
                for path in (0..<paths).map({ ($0 + index) % paths }) {
                    switch path {
                    case 0:
                        plain.append(
                            try await Bench.measure(callers: callers, count: transactions) { id in
                                try await unguarded(store, table, "u-\(round)-\(id)", id)
                            }
                        )
                    case 1:
                        byHand.append(
                            try await Bench.measure(callers: callers, count: transactions) { id in
                                try await statements(store, scope, table, "s-\(round)-\(id)", id)
                            }
                        )
                    case 2:
                        guardedRates.append(
                            try await Bench.measure(callers: callers, count: transactions) { id in
                                try await guarded(operations, scope, table, "g-\(round)-\(id)", id)
                            }
                        )
                    default:
                        observedRates.append(
                            try await Bench.measure(callers: callers, count: transactions) { id in
                                try await guarded(observedOperations, scope, table, "o-\(round)-\(id)", id)
                            }
                        )
                    }
                }
            }
            let u = Bench.median(plain)
            let h = Bench.median(byHand)
            let g = Bench.median(guardedRates)
            let o = observed ? Bench.median(observedRates) : nil
            results.append(
                BenchResult(
                    backend: store.backendName,
                    workload: workload.rawValue,
                    callers: callers,
                    unguardedPerSecond: u,
                    guardedPerSecond: g,
                    statementsPerSecond: h,
                    costRatio: u / g,
                    ownRatio: h / g,
                    observedPerSecond: o,
                    observedRatio: o.map { g / $0 }
                )
            )
        }
        _ = try await store.withTransaction { tx in
            for suffix in ["", "_lines", "_stock"] { try await tx.execute("DROP TABLE IF EXISTS \(table)\(suffix)") }
        }
        return results
    }

    private func createTables<S: SQLStore>(_ store: S, _ table: String) async throws {
        _ = try await store.withTransaction { tx in
            switch workload {
            case .insert:
                try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY, amount INTEGER NOT NULL)")
            case .order:
                try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY, customer TEXT NOT NULL, total INTEGER NOT NULL)")
                try await tx.execute(
                    """
                    CREATE TABLE \(table)_lines (order_id TEXT NOT NULL, line INTEGER NOT NULL, sku TEXT NOT NULL,
                      quantity INTEGER NOT NULL, PRIMARY KEY (order_id, line))
                    """
                )
                try await tx.execute("CREATE TABLE \(table)_stock (sku TEXT PRIMARY KEY, available INTEGER NOT NULL)")
                for row in 0..<Self.stockRows {
                    try await tx.execute("INSERT INTO \(table)_stock (sku, available) VALUES (?, ?)", [.text("sku-\(row)"), 1_000_000_000])
                }
            }
        }
    }

    /// The business write, identical on both paths.
    private func write<T: SQLTransaction>(_ tx: T, _ table: String, _ id: String, _ serial: Int) async throws {
        switch workload {
        case .insert:
            try await tx.execute("INSERT INTO \(table) (id, amount) VALUES (?, ?)", [.text(id), 40])
        case .order:
            let sku = SQLValue.text("sku-\(serial % Self.stockRows)")
            try await tx.execute(
                "INSERT INTO \(table) (id, customer, total) VALUES (?, ?, ?)",
                [.text(id), .text("customer-\(serial % 997)"), 120]
            )
            try await tx.execute(
                "INSERT INTO \(table)_lines (order_id, line, sku, quantity) VALUES (?, 1, ?, 1), (?, 2, ?, 1), (?, 3, ?, 1)",
                [.text(id), sku, .text(id), sku, .text(id), sku]
            )
            try await tx.execute("UPDATE \(table)_stock SET available = available - 3 WHERE sku = ? AND available >= 3", [sku])
        }
    }

    private func unguarded<S: SQLStore>(_ store: S, _ table: String, _ id: String, _ serial: Int) async throws {
        _ = try await store.withTransaction { tx in try await write(tx, table, id, serial) }
    }

    /// The statements `perform` sends, by hand, in one transaction: on SQLite the key's read, the
    /// write, the record's insert; on PostgreSQL the claim inserted first, the write, the
    /// completion. What a correct protocol costs on this client before any Unrace code runs.
    private func statements<S: SQLStore>(_ store: S, _ scope: Scope, _ table: String, _ id: String, _ serial: Int) async throws {
        let now = Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down))
        _ = try await store.withTransaction { tx in
            if store.dialect == .postgres {
                _ = try await tx.query(
                    SQLText.reserveOperationSQL,
                    [
                        .null, .text(scope.rawValue), .text(id), .blob([]), .text("bench"), .null, .integer(30_000), .null,
                        .integer(3_630_000),
                    ]
                )
            } else {
                _ = try await tx.query(SQLText.selectOperationSQL, [.text(scope.rawValue), .text(id)])
            }
            try await write(tx, table, id, serial)
            let record: [SQLValue] = [
                .text(scope.rawValue), .text(id), .blob([]), .text("succeeded"), .integer(1), .text("bench"), .integer(now + 30_000), .null,
                .blob(Array("40".utf8)), .integer(now), .integer(now), .integer(now + 3_600_000),
            ]
            if store.dialect == .postgres {
                try await tx.execute(SQLText.updateOperationSQL, Array(record.dropFirst(2)) + [.text(scope.rawValue), .text(id)])
            } else {
                try await tx.executeBeforeCommit(SQLText.insertOperationSQL, record)
            }
        }
    }

    private func guarded<S: SQLStore>(
        _ operations: Operations<S>,
        _ scope: Scope,
        _ table: String,
        _ id: String,
        _ serial: Int
    ) async throws {
        _ = try await operations.perform(key: id, scope: scope) { tx in
            try await write(tx, table, id, serial)
            return 40
        }
    }
}

/// Timing helpers shared by every benchmark.
enum Bench {
    /// Runs `count` transactions spread over `callers` concurrent tasks; returns transactions per second.
    static func measure(callers: Int, count: Int, _ transaction: @escaping @Sendable (Int) async throws -> Void) async throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in 0..<callers {
                group.addTask {
                    for id in stride(from: lane, to: count, by: callers) { try await transaction(id) }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(count) / seconds
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}
