import ArgumentParser
import Foundation
import Unrace
import UnraceSQL
import UnraceSimulation

/// `unrace bench inbox`: events per second through the inbox, in order and shuffled, against
/// inserting the same rows raw, in alternating rounds of the same run. A third path is the floor:
/// the same in-order events with the statements in-order exactly-once needs written by hand (the
/// stream's head locked, the event id kept under its key, the head moved on).
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
        print("backend    callers   raw events/s   by hand/s   floor   in order/s   ratio   own   shuffled/s   ratio")
        for r in results {
            print(
                String(
                    format: "%-10@ %7d   %12.0f   %9.0f   %5.2f   %10.0f   %5.2f   %4.2f   %10.0f   %5.2f",
                    r.backend as NSString,
                    r.callers,
                    r.raw,
                    r.byHand,
                    r.byHand / r.raw,
                    r.inOrder,
                    r.inOrder / r.raw,
                    r.inOrder / r.byHand,
                    r.shuffled,
                    r.shuffled / r.raw
                )
            )
        }
        print("")
        print("by hand: in order with the statements exactly-once needs, sent by hand (floor: ÷ raw; own: in order ÷ by hand)")
    }

    struct Result: Sendable {
        var backend: String
        var callers: Int
        var raw: Double
        var byHand: Double
        var inOrder: Double
        var shuffled: Double
    }

    /// `--json`'s result: events per second and each path ÷ raw inserts.
    struct JSONResult: Encodable {
        var backend: String
        var callers: Int
        var rawPerSecond: Double
        var byHandPerSecond: Double
        var inOrderPerSecond: Double
        var shuffledPerSecond: Double
        var inOrderRatio: Double
        var shuffledRatio: Double
        /// by hand ÷ raw: what in-order exactly-once costs at the least.
        var floorRatio: Double
        /// in order ÷ by hand: the inbox's own cost beyond those statements (1.0: none).
        var ownRatio: Double

        init(_ result: Result) {
            (backend, callers) = (result.backend, result.callers)
            (rawPerSecond, byHandPerSecond, inOrderPerSecond, shuffledPerSecond) = (
                result.raw, result.byHand, result.inOrder, result.shuffled
            )
            (inOrderRatio, shuffledRatio) = (result.inOrder / result.raw, result.shuffled / result.raw)
            (floorRatio, ownRatio) = (result.byHand / result.raw, result.inOrder / result.byHand)
        }
    }

    /// An event whose predecessor has not committed yet.
    struct NotYet: Error {}

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
                try await tx.execute("CREATE TABLE \(table)_heads (stream TEXT PRIMARY KEY, head BIGINT NOT NULL)")
                try await tx.execute(
                    "CREATE TABLE \(table)_seen (event_id TEXT PRIMARY KEY, stream TEXT NOT NULL, sequence BIGINT NOT NULL)"
                )
            }
            let inbox = try Inbox(store: store)
            let insert: @Sendable (S.Transaction, InboxEvent) async throws -> Void = { tx, event in
                try await tx.execute(
                    "INSERT INTO \(table) (event_id, stream, sequence, type) VALUES (?, ?, ?, ?)",
                    [.text(event.id), .text(event.stream), .integer(event.sequence), .text(event.type)]
                )
            }
            // In order, by hand, with what the inbox must send and nothing more: the stream's head
            // and where the event id was seen, read in one statement (locked on PostgreSQL by an
            // upsert; SQLite's writer already excludes other steps), the event's place checked,
            // the business insert, then the event id kept under its key and the head moved on —
            // one statement on PostgreSQL, two on SQLite (no writable CTEs there).
            let concurrent = store.dialect.hasConcurrentWriters
            let byHandOnce: @Sendable (InboxEvent) async throws -> Void = { event in
                _ = try await store.withTransaction { tx in
                    let row =
                        concurrent
                        ? try await tx.query(
                            """
                            INSERT INTO \(table)_heads (stream, head) VALUES (?, 0) ON CONFLICT (stream) DO UPDATE SET stream = excluded.stream
                            RETURNING head, (SELECT stream FROM \(table)_seen WHERE event_id = ?) AS seen
                            """,
                            [.text(event.stream), .text(event.id)]
                        )[0]
                        : try await tx.query(
                            """
                            SELECT COALESCE(h.head, 0) AS head, s.stream AS seen FROM (SELECT 1) AS t
                            LEFT JOIN \(table)_heads AS h ON h.stream = ? LEFT JOIN \(table)_seen AS s ON s.event_id = ?
                            """,
                            [.text(event.stream), .text(event.id)]
                        )[0]
                    let head = try row.int64("head")
                    guard row["seen"].isNull, event.sequence <= head + 1 else {
                        if row["seen"].isNull { throw NotYet() }
                        return  // a duplicate: done already
                    }
                    guard event.sequence == head + 1 else { return }  // an older event: done already
                    try await insert(tx, event)
                    if concurrent {
                        try await tx.execute(
                            """
                            WITH seen AS (INSERT INTO \(table)_seen (event_id, stream, sequence) VALUES (?, ?, ?) RETURNING stream)
                            UPDATE \(table)_heads SET head = ? WHERE stream = (SELECT stream FROM seen)
                            """,
                            [.text(event.id), .text(event.stream), .integer(event.sequence), .integer(event.sequence)]
                        )
                    } else {
                        try await tx.execute(
                            "INSERT INTO \(table)_seen (event_id, stream, sequence) VALUES (?, ?, ?)",
                            [.text(event.id), .text(event.stream), .integer(event.sequence)]
                        )
                        try await tx.execute(
                            "INSERT INTO \(table)_heads (stream, head) VALUES (?, ?) ON CONFLICT (stream) DO UPDATE SET head = excluded.head",
                            [.text(event.stream), .integer(event.sequence)]
                        )
                    }
                }
            }
            // Two callers can hold consecutive events of one stream: the later one waits its turn
            // (a real consumer would park it; the inbox's own path does).
            let byHand: @Sendable (InboxEvent) async throws -> Void = { event in
                for _ in 0..<100_000 {
                    try Task.checkCancellation()
                    do { return try await byHandOnce(event) } catch is NotYet { await Task.yield() }
                }
                throw UnraceError(.retryLimitReached, "bench: event \(event.sequence) of a stream never got its turn")
            }
            do {
                let results = try await measure(store, inbox, insert, byHand, table)
                try await drop(store, table)
                return results
            } catch {
                try? await drop(store, table)
                throw error
            }
        }

        func drop<S: SQLStore>(_ store: S, _ table: String) async throws {
            _ = try await store.withTransaction { tx in
                for suffix in ["", "_heads", "_seen"] { try await tx.execute("DROP TABLE IF EXISTS \(table)\(suffix)") }
            }
        }

        func measure<S: SQLStore>(
            _ store: S,
            _ inbox: Inbox<S>,
            _ insert: @escaping @Sendable (S.Transaction, InboxEvent) async throws -> Void,
            _ byHand: @escaping @Sendable (InboxEvent) async throws -> Void,
            _ table: String
        ) async throws -> [Result] {
            var results: [Result] = []
            var round = 0
            for callers in callerCounts {
                var raw: [Double] = []
                var byHandRates: [Double] = []
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
                    let handEvents = inOrder.map { event in
                        try! InboxEvent(id: "h-\(event.id)", stream: "h-\(event.stream)", sequence: event.sequence, type: event.type)
                    }
                    let shuffledEvents = mixed.map { event in
                        try! InboxEvent(id: "s-\(event.id)", stream: "s-\(event.stream)", sequence: event.sequence, type: event.type)
                    }
                    raw.append(
                        try await Bench.measure(callers: callers, count: rawEvents.count) { index in
                            _ = try await store.withTransaction { tx in try await insert(tx, rawEvents[index]) }
                        }
                    )
                    byHandRates.append(
                        try await Bench.measure(callers: callers, count: handEvents.count) { index in try await byHand(handEvents[index]) }
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
                        byHand: Bench.median(Array(byHandRates.dropFirst())),
                        inOrder: Bench.median(Array(ordered.dropFirst())),
                        shuffled: Bench.median(Array(shuffled.dropFirst()))
                    )
                )
            }
            return results
        }
    }
}
