import ArgumentParser
import Foundation
import Unrace
import UnraceSQL
import UnraceSimulation

/// `unrace bench inbox`: events per second through the inbox, in order and shuffled, against
/// inserting the same rows raw, in alternating rounds of the same run.
struct InboxBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inbox",
        abstract: "Inbox.receive in order and shuffled against raw inserts of the same rows."
    )

    @OptionGroup var database: DatabaseOption
    @OptionGroup var sweep: SweepOptions
    @Option(help: "Order streams per round (10 to 10000); each has 2 to 4 events.")
    var orders = 400
    @Flag(help: "Print JSON (stable field names, one result per caller count).") var json = false

    func validate() throws {
        guard (10...10_000).contains(orders) else { throw ValidationError("--orders must be 10 to 10000") }
    }

    var rounds: Int { sweep.rounds }
    var callerCounts: [Int] { sweep.callerCounts }

    func run() async throws {
        let job = Job(callerCounts: callerCounts, orders: orders, rounds: rounds)
        let results = try await withDatabase(database.location, logger: cliLogger("unrace.bench"), job)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(["results": results.map(JSONResult.init)]), as: UTF8.self))
            return
        }
        print("unrace bench inbox: Inbox.receive against the same INSERT without the inbox")
        print("(\(orders) order streams per round, \(rounds) alternating rounds of each, median round)")
        print("")
        print("backend    callers   raw events/s   in order/s   ratio   shuffled/s   ratio")
        for r in results {
            print(
                String(
                    format: "%-10@ %7d   %12.0f   %10.0f   %5.2f   %10.0f   %5.2f",
                    r.backend as NSString,
                    r.callers,
                    r.raw,
                    r.inOrder,
                    r.inOrder / r.raw,
                    r.shuffled,
                    r.shuffled / r.raw
                )
            )
        }
    }

    struct Result: Sendable {
        var backend: String
        var callers: Int
        var raw: Double
        var inOrder: Double
        var shuffled: Double
    }

    /// `--json`'s result: events per second and each path ÷ raw inserts.
    struct JSONResult: Encodable {
        var backend: String
        var callers: Int
        var rawPerSecond: Double
        var inOrderPerSecond: Double
        var shuffledPerSecond: Double
        var inOrderRatio: Double
        var shuffledRatio: Double

        init(_ result: Result) {
            (backend, callers) = (result.backend, result.callers)
            (rawPerSecond, inOrderPerSecond, shuffledPerSecond) = (result.raw, result.inOrder, result.shuffled)
            (inOrderRatio, shuffledRatio) = (result.inOrder / result.raw, result.shuffled / result.raw)
        }
    }

    struct Job: StoreJob {
        let callerCounts: [Int]
        let orders: Int
        let rounds: Int

        func run<S: SQLStore>(_ store: S) async throws -> [Result] {
            let table = "bench_events_\(UUID().uuidString.prefix(8).lowercased())"
            _ = try await store.withTransaction { tx in
                try await tx.execute(
                    "CREATE TABLE \(table) (event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, sequence BIGINT NOT NULL, type TEXT NOT NULL)"
                )
            }
            let inbox = try Inbox(store: store)
            let insert: @Sendable (S.Transaction, InboxEvent) async throws -> Void = { tx, event in
                try await tx.execute(
                    "INSERT INTO \(table) (event_id, stream, sequence, type) VALUES (?, ?, ?, ?)",
                    [.text(event.id), .text(event.stream), .integer(event.sequence), .text(event.type)]
                )
            }
            var results: [Result] = []
            var round = 0
            for callers in callerCounts {
                var raw: [Double] = []
                var ordered: [Double] = []
                var shuffled: [Double] = []
                for _ in 0..<(rounds + 1) {  // the first round of each kind warms up and is dropped
                    round += 1
                    let streams = try OrderStreams.streams(orders: orders, seed: UInt64(round), prefix: "\(table)-\(round)")
                    // In order: streams interleaved, each in its own order — what one partition gives.
                    let inOrder = (0..<4).flatMap { depth in streams.filter { depth < $0.count }.map { $0[depth] } }
                    var generator = SeededGenerator(seed: UInt64(round))
                    let mixed = generator.shuffled(Array(streams.joined()))
                    let rawEvents = inOrder.map { event in
                        try! InboxEvent(id: "raw-\(event.id)", stream: event.stream, sequence: event.sequence, type: event.type)
                    }
                    let shuffledEvents = mixed.map { event in
                        try! InboxEvent(id: "s-\(event.id)", stream: "s-\(event.stream)", sequence: event.sequence, type: event.type)
                    }
                    raw.append(
                        try await Bench.measure(callers: callers, count: rawEvents.count) { index in
                            _ = try await store.withTransaction { tx in try await insert(tx, rawEvents[index]) }
                        }
                    )
                    ordered.append(
                        try await Bench.measure(callers: callers, count: inOrder.count) { index in
                            _ = try await inbox.receive(inOrder[index]) { tx, event in
                                try await insert(tx, event)
                                return .applied
                            }
                        }
                    )
                    shuffled.append(
                        try await Bench.measure(callers: callers, count: shuffledEvents.count) { index in
                            _ = try await inbox.receive(shuffledEvents[index]) { tx, event in
                                try await insert(tx, event)
                                return .applied
                            }
                        }
                    )
                }
                results.append(
                    Result(
                        backend: store.backendName,
                        callers: callers,
                        raw: Bench.median(Array(raw.dropFirst())),
                        inOrder: Bench.median(Array(ordered.dropFirst())),
                        shuffled: Bench.median(Array(shuffled.dropFirst()))
                    )
                )
            }
            _ = try await store.withTransaction { tx in try await tx.execute("DROP TABLE \(table)") }
            return results
        }
    }
}
