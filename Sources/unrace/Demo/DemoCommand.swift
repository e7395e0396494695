import ArgumentParser
import Foundation
import Unrace
import UnraceSQL
import UnraceSimulation

/// `unrace demo`: each race of the seed, with a naive handler and a guarded one, on a real database.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Reproduce each race with a naive handler and remove it with Unrace's guard.",
        discussion: """
            Runs on a temporary SQLite file unless --database names a file or a postgres:// URL.
            Exits with status 1 if a guarded handler ever produces an anomaly, else 2 if --html \
            could not be written (the report is printed either way); 2 if the database failed it \
            (nothing is reported then), 64 for a database URL it cannot use.
            """
    )

    @OptionGroup var database: DatabaseOption
    @Flag(help: "Print the results as JSON: {\"rows\": [...]}.")
    var json = false
    @Option(help: "The seed that decides every handler's processing time.")
    var seed: UInt64 = 42
    @Option(help: "Operations per case (10 to 2000).")
    var operations = 120
    @Option(
        help:
            "Also draw each race as an HTML timeline in this file: the simulator's naive and guarded runs of the first seed from --seed where the naive one breaks."
    )
    var html: String?

    func validate() throws {
        guard (10...2_000).contains(operations) else { throw ValidationError("--operations must be between 10 and 2000") }
    }

    func run() async throws {
        let started = ContinuousClock.now
        let result: (backend: String, sections: [DemoSection])
        do {
            result = try await withDatabase(
                database.location,
                logger: cliLogger("unrace.demo"),
                AllSections(operations: operations, seed: seed, progress: !json)
            )
        } catch {
            // Not an anomaly (exit 1 means a guard failed): the demo stopped on the database.
            FileHandle.standardError.write(Data("error: the demo stopped: \(error)\n".utf8))
            throw ExitCode((error as? UnraceError)?.code == .invalidDatabaseURL ? 64 : 2)
        }
        let elapsed = ContinuousClock.now - started
        print(json ? DemoReport.json(result.sections) : DemoReport.table(result.sections, backend: result.backend, elapsed: elapsed))
        var written = true
        if let html {
            // One race of each kind the demo shows, drawn from the deterministic simulator.
            var panels: [Timeline.Panel] = []
            for name in ["payment-capture", "wallet", "order-lifecycle"] {
                guard let scenario = Scenario.named(name) else { continue }
                panels += await Timeline.race(scenario, from: seed)
            }
            let page = Timeline(title: "unrace demo · the races, drawn from seed \(seed)", panels: panels).html()
            written = writeOutputFile(page, to: html)
            if written, !json { print("timelines: \(html)") }
        }
        // A guarded anomaly outranks a file that could not be written.
        if !result.sections.flatMap(\.rows).allSatisfy(\.guardedClean) {
            throw ExitCode(1)
        }
        if !written { throw ExitCode(2) }
    }

    /// Every section, on one store.
    struct AllSections: StoreJob {
        let operations: Int
        let seed: UInt64
        let progress: Bool

        func run<S: SQLStore>(_ store: S) async throws -> (backend: String, sections: [DemoSection]) {
            var sections: [DemoSection] = []
            sections.append(try await DoubleExecutionDemo(operations: operations, seed: seed, progress: progress).run(store))
            if progress { FileHandle.standardError.write(Data("  running wallets, stock, quotas, counters, seats…\n".utf8)) }
            sections.append(try await LostUpdateDemo().run(store))
            if progress { FileHandle.standardError.write(Data("  running order lifecycles…\n".utf8)) }
            sections.append(try await OutOfOrderDemo(orders: 100, seed: seed).run(store))
            return (store.backendName, sections)
        }
    }
}
