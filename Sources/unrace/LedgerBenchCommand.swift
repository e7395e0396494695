import ArgumentParser
import Foundation
import Unrace
import UnraceSQL

/// `unrace bench ledger`: transfers per second on one hot account — the batched ledger (group
/// commit) against one transaction per transfer and against a naive `SELECT … FOR UPDATE` then
/// `UPDATE`, in alternating rounds of the same run.
struct LedgerBenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ledger",
        abstract: "Hot-account transfers: batched ledger vs one transaction per transfer vs naive locking."
    )

    @OptionGroup var database: DatabaseOption
    @Option(help: "Concurrent callers (1 to 512).")
    var callers = 512
    @Option(help: "Transfers per round (100 to 100000).")
    var transfers = 16_000
    @Option(help: "Rounds of each kind, alternated (1 to 50).")
    var rounds = 3
    @Option(help: "The batched ledger's group wait, in microseconds (0 to 100000).")
    var batchWaitMicroseconds = 0

    @Flag(help: "Print JSON (stable field names).") var json = false

    func validate() throws {
        guard (1...512).contains(callers) else { throw ValidationError("--callers must be 1 to 512") }
        guard (100...100_000).contains(transfers) else { throw ValidationError("--transfers must be 100 to 100000") }
        guard (1...50).contains(rounds) else { throw ValidationError("--rounds must be 1 to 50") }
        guard (0...100_000).contains(batchWaitMicroseconds) else {
            throw ValidationError("--batch-wait-microseconds must be 0 to 100000")
        }
    }

    func run() async throws {
        let result = try await withDatabase(
            database.location,
            logger: cliLogger("unrace.bench"),
            Job(callers: callers, transfers: transfers, rounds: rounds, batchWait: .microseconds(batchWaitMicroseconds))
        )
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(JSONResult(result, callers: callers, transfers: transfers)), as: UTF8.self))
            return
        }
        print("unrace bench ledger: \(transfers) transfers into one hot account per round, \(callers) callers, median of \(rounds)")
        print("")
        print("backend    batched/s   per-transfer/s   naive FOR UPDATE/s   batched ÷ naive   per-transfer ÷ naive")
        print(
            String(
                format: "%-10@ %9.0f   %14.0f   %18.0f   %15.1f   %20.2f",
                result.backend as NSString,
                result.batched,
                result.perTransfer,
                result.naive,
                result.batched / result.naive,
                result.perTransfer / result.naive
            )
        )
    }

    struct Result: Sendable {
        var backend: String
        var batched: Double
        var perTransfer: Double
        var naive: Double
    }

    /// `--json`'s result: transfers per second on each path and each ÷ naive.
    struct JSONResult: Encodable {
        var backend: String
        var callers: Int
        var transfers: Int
        var batchedPerSecond: Double
        var perTransferPerSecond: Double
        var naivePerSecond: Double
        var batchedOverNaive: Double
        var perTransferOverNaive: Double

        init(_ result: Result, callers: Int, transfers: Int) {
            (backend, self.callers, self.transfers) = (result.backend, callers, transfers)
            (batchedPerSecond, perTransferPerSecond, naivePerSecond) = (result.batched, result.perTransfer, result.naive)
            (batchedOverNaive, perTransferOverNaive) = (result.batched / result.naive, result.perTransfer / result.naive)
        }
    }

    struct Job: StoreJob {
        let callers: Int
        let transfers: Int
        let rounds: Int
        let batchWait: Duration

        func run<S: SQLStore>(_ store: S) async throws -> Result {
            let prefix = "bench-\(UUID().uuidString.prefix(8).lowercased())"
            let table = "bench_naive_\(prefix.suffix(8))"
            var grouped = LedgerConfiguration()
            grouped.batchWait = batchWait
            let batched = try Ledger(store: store, configuration: grouped)
            var single = LedgerConfiguration()
            single.batchSize = 1
            let perTransfer = try Ledger(store: store, configuration: single)
            let hot = "\(prefix)-hot"
            // Nine payers and one hot payee: the ten accounts of the ledger tests.
            let payers = (0..<9).map { "\(prefix)-payer-\($0)" }
            _ = try await batched.createAccounts(
                [Account(id: hot, ledger: 1, code: 1)] + payers.map { Account(id: $0, ledger: 1, code: 2) }
            )
            _ = try await store.withTransaction { tx in
                try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)")
                try await tx.execute("CREATE TABLE \(table)_log (id TEXT PRIMARY KEY, account TEXT NOT NULL, amount BIGINT NOT NULL)")
                try await tx.execute("INSERT INTO \(table) (id, balance) VALUES ('hot', 0)")
            }
            var rates: (batched: [Double], perTransfer: [Double], naive: [Double]) = ([], [], [])
            for round in 0..<rounds {
                rates.batched.append(
                    try await Bench.measure(callers: callers, count: transfers) { index in
                        _ = try await batched.submit([
                            Transfer(id: "\(prefix)-b\(round)-\(index)", debit: payers[index % payers.count], credit: hot, amount: 1)
                        ])
                    }
                )
                rates.perTransfer.append(
                    try await Bench.measure(callers: callers, count: transfers) { index in
                        _ = try await perTransfer.submit([
                            Transfer(id: "\(prefix)-s\(round)-\(index)", debit: payers[index % payers.count], credit: hot, amount: 1)
                        ])
                    }
                )
                rates.naive.append(
                    try await Bench.measure(callers: callers, count: transfers) { index in
                        _ = try await store.withTransaction { tx in
                            let lock = store.backendName == "postgres" ? " FOR UPDATE" : ""
                            let balance = try await tx.query("SELECT balance FROM \(table) WHERE id = 'hot'\(lock)")[0].int64("balance")
                            try await tx.execute("UPDATE \(table) SET balance = ? WHERE id = 'hot'", [.integer(balance + 1)])
                            try await tx.execute(
                                "INSERT INTO \(table)_log (id, account, amount) VALUES (?, 'hot', 1)",
                                [.text("\(round)-\(index)")]
                            )
                        }
                    }
                )
            }
            _ = try await store.withTransaction { tx in
                try await tx.execute("DROP TABLE \(table)")
                try await tx.execute("DROP TABLE \(table)_log")
            }
            return Result(
                backend: store.backendName,
                batched: Bench.median(rates.batched),
                perTransfer: Bench.median(rates.perTransfer),
                naive: Bench.median(rates.naive)
            )
        }
    }
}
