import ArgumentParser
import CoreMetrics
import Foundation
import InMemoryTracing
import Prometheus
import Tracing
import Unrace
import UnraceSQL
import UnraceSQLite

/// `unrace bench observability`: what metrics and tracing add to one `perform`, measured where
/// little I/O hides it — SQLite with `synchronous = NORMAL` (no fsync per commit) — in
/// alternating rounds. (`MemoryStore` copies its state per step for rollback, so its cost grows
/// with what it holds: no baseline.)
struct ObservabilityBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "observability",
        abstract: "Operations.perform with metrics and tracing on against off, on SQLite without fsync (the CPU cost)."
    )

    @Option(help: "Calls per round (1000 to 1000000).")
    var calls = 3_000
    @Flag(help: "Switch on metrics only (no tracer), to see their share.")
    var metricsOnly = false
    @Flag(help: "Switch on tracing only (no metrics), to see its share.")
    var tracingOnly = false
    @Option(help: "Rounds of each kind, alternated (1 to 50).")
    var rounds = 11
    @Option(
        help:
            "The tracer switched on: in-memory (swift-distributed-tracing's InMemoryTracer, which keeps every span) or recording (a small tracer with a bounded buffer of finished spans; the default). Not with --metrics-only."
    )
    var tracer: BenchTracerKind?
    @Flag(help: "Print JSON.")
    var json = false

    /// The tracer of the "on" rounds: `--tracer`, else the recording one.
    var tracerKind: BenchTracerKind { tracer ?? .recording }

    enum BenchTracerKind: String, ExpressibleByArgument {
        case inMemory = "in-memory"
        case recording
    }

    func validate() throws {
        guard !(metricsOnly && tracingOnly) else { throw ValidationError("--metrics-only and --tracing-only exclude each other") }
        guard !(metricsOnly && tracer != nil) else { throw ValidationError("--tracer has no effect with --metrics-only") }
        guard (1_000...1_000_000).contains(calls) else { throw ValidationError("--calls must be 1000 to 1000000") }
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1 to 50") }
    }

    /// What `--json` prints: the measure and the settings it was taken with, so runs compare.
    struct Result: Codable {
        var backend = "sqlite"
        var calls: Int
        var rounds: Int
        /// Whether the "on" rounds had a metrics factory.
        var metrics: Bool
        /// The "on" rounds' tracer: `in-memory`, `recording` or `none`.
        var tracer: String
        var plainMicroseconds: Double
        var observedMicroseconds: Double
        var addedMicroseconds: Double
        var ratio: Double
    }

    func run() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("unrace-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var configuration = SQLiteStore.Configuration()
        configuration.durability = .normal
        let store = try await SQLiteStore(path: folder.appendingPathComponent("bench.sqlite").path, configuration: configuration)
        let plain = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let inMemory = InMemoryTracer()
        let chosen: any Tracer = tracerKind == .inMemory ? inMemory : RecordingTracer()
        let observed = try Operations(
            store: store,
            lease: .seconds(30),
            retention: .seconds(3_600),
            observability: Observability(
                metricsFactory: tracingOnly
                    ? NOOPMetricsHandler.instance : PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()),
                tracer: metricsOnly ? NoOpTracer() : chosen
            )
        )
        // CPU time of this process (every thread), not wall time: what observability adds is CPU
        // work, and CPU time does not count the time other processes on a shared machine take.
        func cpuMicroseconds() -> Double {
            var time = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
            return Double(time.tv_sec) * 1e6 + Double(time.tv_nsec) / 1e3
        }
        func round(_ operations: Operations<SQLiteStore>, _ prefix: String) async throws -> Double {
            let start = cpuMicroseconds()
            for index in 0..<calls {
                _ = try await operations.perform(key: "\(prefix)-\(index)") { _ in index }
            }
            return (cpuMicroseconds() - start) / Double(calls)
        }
        _ = try await round(plain, "warm-p")
        _ = try await round(observed, "warm-o")
        inMemory.clearAll()
        var plainTimes: [Double] = []
        var observedTimes: [Double] = []
        for index in 0..<rounds {
            if index % 2 == 0 {
                plainTimes.append(try await round(plain, "p\(index)"))
                observedTimes.append(try await round(observed, "o\(index)"))
            } else {
                observedTimes.append(try await round(observed, "o\(index)"))
                plainTimes.append(try await round(plain, "p\(index)"))
            }
            inMemory.clearAll()
        }
        let p = Bench.median(plainTimes)
        let o = Bench.median(observedTimes)
        let result = Result(
            calls: calls,
            rounds: rounds,
            metrics: !tracingOnly,
            tracer: metricsOnly ? "none" : tracerKind.rawValue,
            plainMicroseconds: p,
            observedMicroseconds: o,
            addedMicroseconds: o - p,
            ratio: o / p
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
            return
        }
        print(
            "unrace bench observability: perform on SQLite (synchronous = NORMAL), \(calls) calls per round, \(rounds) alternating rounds, median"
        )
        print(String(format: "CPU per call — off: %.2f µs   on: %.2f µs   added: %.2f µs   on ÷ off: %.3f", p, o, o - p, o / p))
        print(
            "on: \(tracingOnly ? "no" : "a Prometheus") metrics factory and \(metricsOnly ? "no tracer" : "the \(tracerKind.rawValue) tracer"); off: nothing bootstrapped (no-op)."
        )
        print("On a real store a call also waits for its transaction: compare the added µs with `unrace bench --observed`.")
    }
}
