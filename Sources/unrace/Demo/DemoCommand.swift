import ArgumentParser
import Foundation
import Unrace

/// `unrace demo`: each race of the seed, with a naive handler and a guarded one, on a real database.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Reproduce each race with a naive handler and remove it with Unrace's guard.",
        discussion: """
            Runs on a temporary SQLite file unless --database names a file or a postgres:// URL.
            Exits with status 1 if a guarded handler ever produces an anomaly.
            """
    )

    @OptionGroup var database: DatabaseOption
    @Flag(help: "Print the results as JSON: {\"rows\": [...]}.")
    var json = false
    @Option(help: "The seed that decides every handler's processing time.")
    var seed: UInt64 = 42
    @Option(help: "Operations per case (10 to 2000).")
    var operations = 120

    func validate() throws {
        guard (10...2_000).contains(operations) else { throw ValidationError("--operations must be between 10 and 2000") }
    }

    func run() async throws {
        let started = ContinuousClock.now
        let demo = DoubleExecutionDemo(operations: operations, seed: seed, progress: !json)
        let result = try await withDatabase(database.location, logger: cliLogger("unrace.demo"), demo)
        let elapsed = ContinuousClock.now - started
        if json {
            print(DemoReport.json(rows: result.rows))
        } else {
            print(DemoReport.table(result, elapsed: elapsed))
        }
        if result.rows.contains(where: { $0.guarded.anomalies > 0 || $0.guarded.missing > 0 }) {
            throw ExitCode(1)
        }
    }
}
