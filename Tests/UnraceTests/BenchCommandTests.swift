import Foundation
import Testing

/// `unrace bench` as a user runs it: each workload runs on each backend and reports its ratios.
/// The numbers themselves are measured, not asserted (the machines are shared and noisy).
@Suite("unrace bench")
struct BenchCommandTests {
    struct Document: Decodable {
        struct Result: Decodable {
            var backend: String
            var workload: String
            var callers: Int
            var unguardedPerSecond: Double
            var guardedPerSecond: Double
            var statementsPerSecond: Double
            var costRatio: Double
            var ownRatio: Double
        }
        var results: [Result]
    }

    @Test("bench --workload insert|order --json: one result per caller count, both paths measured", arguments: sqlBackends)
    func workloads(backend: SQLBackend) async throws {
        for workload in ["insert", "order"] {
            var arguments = ["bench", "--workload", workload, "--transactions", "100", "--rounds", "1", "--callers", "1,4", "--json"]
            if backend == .postgres { arguments += ["--database", try TestPostgres.requireURL()] }
            let child = try ChildProcess(arguments)
            #expect(await child.exitStatus() == 0)
            let document = try JSONDecoder().decode(Document.self, from: Data(child.printed.utf8))
            #expect(document.results.map(\.callers) == [1, 4])
            for result in document.results {
                #expect(result.backend == (backend == .postgres ? "postgres" : "sqlite"))
                #expect(result.workload == workload)
                #expect(result.unguardedPerSecond > 0 && result.guardedPerSecond > 0)
                #expect(abs(result.costRatio - result.unguardedPerSecond / result.guardedPerSecond) < 1e-9)
                #expect(result.statementsPerSecond > 0)
                #expect(abs(result.ownRatio - result.statementsPerSecond / result.guardedPerSecond) < 1e-9)
            }
        }
    }

    struct HTTPDocument: Decodable {
        var backend: String
        var requests: Int
        var plainPerSecond: Double
        var guardedPerSecond: Double
        var throughputRatio: Double
        var replaysPerSecond: Double
    }

    @Test("bench http --json: both routes and the replays measured over loopback HTTP", arguments: sqlBackends)
    func http(backend: SQLBackend) async throws {
        var arguments = ["bench", "http", "--requests", "100", "--rounds", "1", "--connections", "4", "--json"]
        if backend == .postgres { arguments += ["--database", try TestPostgres.requireURL()] }
        let child = try ChildProcess(arguments)
        #expect(await child.exitStatus() == 0)
        let document = try JSONDecoder().decode(HTTPDocument.self, from: Data(child.printed.utf8))
        #expect(document.backend == (backend == .postgres ? "postgres" : "sqlite"))
        #expect(document.requests == 100)
        #expect(document.plainPerSecond > 0 && document.guardedPerSecond > 0 && document.replaysPerSecond > 0)
        #expect(abs(document.throughputRatio - document.guardedPerSecond / document.plainPerSecond) < 1e-9)
    }

    @Test("bench inbox's by-hand floor runs on PostgreSQL too (its upsert and statements are both dialects')", arguments: sqlBackends)
    func inboxByHand(backend: SQLBackend) async throws {
        var arguments = ["bench", "inbox", "--orders", "10", "--rounds", "1", "--callers", "2", "--json"]
        if backend == .postgres { arguments += ["--database", try TestPostgres.requireURL()] }
        let inbox = try ChildProcess(arguments)
        #expect(await inbox.exitStatus() == 0, "\(inbox.printed)")
        let results = try #require(
            (try JSONSerialization.jsonObject(with: Data(inbox.printed.utf8)) as? [String: Any])?["results"] as? [[String: Any]]
        )
        #expect(results.count == 1 && (results[0]["byHandPerSecond"] as? Double ?? 0) > 0)
    }

    @Test("bench inbox --json and bench ledger --json: stable field names, every path measured, ratios from the same run")
    func inboxAndLedger() async throws {
        let inbox = try ChildProcess(["bench", "inbox", "--orders", "10", "--rounds", "1", "--callers", "1,2", "--json"])
        #expect(await inbox.exitStatus() == 0)
        let inboxResults = try #require(
            (try JSONSerialization.jsonObject(with: Data(inbox.printed.utf8)) as? [String: Any])?["results"] as? [[String: Any]]
        )
        #expect(inboxResults.map { $0["callers"] as? Int } == [1, 2])
        for result in inboxResults {
            #expect(
                Set(result.keys) == [
                    "backend", "callers", "rawPerSecond", "byHandPerSecond", "inOrderPerSecond", "shuffledPerSecond", "inOrderRatio",
                    "shuffledRatio", "floorRatio", "ownRatio",
                ]
            )
            let raw = try #require(result["rawPerSecond"] as? Double)
            #expect(raw > 0 && abs((result["inOrderRatio"] as? Double ?? 0) - (result["inOrderPerSecond"] as? Double ?? 0) / raw) < 1e-9)
            let byHand = try #require(result["byHandPerSecond"] as? Double)
            #expect(byHand > 0 && abs((result["floorRatio"] as? Double ?? 0) - byHand / raw) < 1e-9)
            #expect(abs((result["ownRatio"] as? Double ?? 0) - (result["inOrderPerSecond"] as? Double ?? 0) / byHand) < 1e-9)
        }
        let ledger = try ChildProcess(["bench", "ledger", "--callers", "4", "--transfers", "100", "--rounds", "1", "--json"])
        #expect(await ledger.exitStatus() == 0)
        let document = try #require(try JSONSerialization.jsonObject(with: Data(ledger.printed.utf8)) as? [String: Any])
        #expect(
            Set(document.keys) == [
                "backend", "callers", "transfers", "batchedPerSecond", "perTransferPerSecond", "naivePerSecond", "batchedOverNaive",
                "perTransferOverNaive",
            ]
        )
        #expect(document["callers"] as? Int == 4 && document["transfers"] as? Int == 100)
        #expect((document["batchedPerSecond"] as? Double ?? 0) > 0 && (document["naivePerSecond"] as? Double ?? 0) > 0)
    }

    @Test("an unknown workload is refused before anything runs")
    func unknownWorkload() async throws {
        let child = try ChildProcess(["bench", "--workload", "bulk"])
        #expect(await child.exitStatus() != 0)
        #expect(child.printed.isEmpty)
    }

    @Test(
        "an option out of its range or a caller count that is not a number is refused before anything runs (exit 64)",
        arguments: [
            (["bench", "--callers", "1,x,16"], "--callers must list numbers from 1 to 256"),
            (["bench", "inbox", "--callers", "2,"], "--callers must list numbers from 1 to 256"),
            (["bench", "ledger", "--batch-wait-microseconds=-5"], "--batch-wait-microseconds must be 0 to 100000"),
            (["bench", "ledger", "--batch-wait-microseconds", "100001"], "--batch-wait-microseconds must be 0 to 100000"),
        ]
    )
    func refusedOptions(arguments: [String], message: String) async throws {
        let child = try ChildProcess(arguments, captureErrors: true)
        #expect(await child.exitStatus() == 64)
        #expect(child.printed.contains(message), "\(child.printed)")
    }
}
