public import ArgumentParser
import Foundation
import Logging
public import UnraceSimulation

/// `unrace simulate`: every race of the seed, reproduced deterministically from a seed number.
struct SimulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Reproduce a race from a seed in the deterministic simulator, shrink it, and prove the guards.",
        discussion: """
            One seed decides everything in a run: which actor runs next, delays, redeliveries, \
            crashes, pauses and the run's fault mix. The same seed gives the same trace.

            With no --scenario every scenario runs; with no --handler both handlers run. \
            With no --seed a random seed is chosen (and printed first). --seeds N runs N seeds \
            from the seed. A violation prints its invariant, the command that reproduces it and \
            the shrunk trace. Exits with status 1 if a guarded handler broke an invariant, else 2 if \
            --html could not be written (the report is printed either way).

            Options (of `simulate run`, the default subcommand; `unrace simulate run --help` \
            explains each):
              --list                       list the scenarios
              --scenario NAME              one scenario (default: every scenario)
              --handler naive|guarded      one handler (default: both)
              --seed N                     the (first) seed, 0 to 18446744073709551615
              --seeds N                    how many seeds, from the seed
              --trace                      print every step of the run
              --json                       print JSON
              --html FILE                  draw the runs as an HTML timeline
              --store memory|sqlite        the store runs are built on
              --shrink-budget N            the most runs the shrinker may try
              --log-level LEVEL            also log what the Unrace API did, to standard error
            """,
        subcommands: [Run.self, SweepCommand.self],
        defaultSubcommand: Run.self
    )

    /// The default subcommand: run seeds.
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "run", abstract: "Run seeds of scenarios (the default).")

        /// The most seeds one command may run.
        static let seedsMaximum = 10_000_000

        @Flag(help: "List the scenarios, one per line, and exit.")
        var list = false
        @Option(help: "The scenario to run (see --list); default: every scenario.")
        var scenario: String?
        @Option(help: "naive or guarded; default: both.")
        var handler: HandlerKind?
        @Option(parsing: .unconditional, help: "The (first) seed, 0 to 18446744073709551615; default: a random one.", transform: Seed.parse)
        var seed: UInt64?
        @Option(help: "How many seeds to run, from the seed (1 to 10,000,000).")
        var seeds = 1
        @Flag(help: "Print the full trace of the (first) run.")
        var trace = false
        @Option(
            help:
                "Also draw the runs as one self-contained HTML timeline in this file: each handler's run of the (first) seed, shrunk when it broke an invariant."
        )
        var html: String?
        @Flag(help: "Print the results as JSON.")
        var json = false
        @Option(help: "The most candidate runs the shrinker may try (0 to 20,000).")
        var shrinkBudget = 2_000
        @Option(help: "The store runs are built on: memory (fastest) or sqlite (the shipping SQLite store, a fresh file per run).")
        var store: SimulationStoreKind = .memory
        @Option(
            help:
                "Also log what the Unrace API did in the runs (retried updates, takeovers), at this level or worse, to standard error: trace, debug, info, notice, warning, error, critical. Default: no logs; the trace is the record."
        )
        var logLevel: Logger.Level?

        func validate() throws {
            if let scenario, Scenario.named(scenario) == nil {
                throw ValidationError("unknown scenario '\(scenario)'; `unrace simulate --list` names them")
            }
            guard (1...Self.seedsMaximum).contains(seeds) else { throw ValidationError("--seeds must be between 1 and 10,000,000") }
            if let seed, UInt64.max - seed < UInt64(seeds - 1) {
                throw ValidationError("--seed \(seed) with --seeds \(seeds) would run past the last seed, 18446744073709551615")
            }
            guard (0...Simulator.shrinkBudgetMaximum).contains(shrinkBudget) else {
                throw ValidationError("--shrink-budget must be between 0 and 20,000")
            }
        }

        func run() async throws {
            if list {
                for scenario in Scenario.all { print(scenario.name) }
                return
            }
            let firstSeed = seed ?? UInt64.random(in: 1...UInt64(UInt32.max))
            let scenarios = scenario.map { [Scenario.named($0)!] } ?? Scenario.all
            let handlers = handler.map { [$0] } ?? HandlerKind.allCases
            if !json { print("seed \(firstSeed)\(seeds > 1 ? " (\(seeds) seeds: \(firstSeed)…\(firstSeed + UInt64(seeds - 1)))" : "")") }

            var results: [SimulationResult] = []
            for scenario in scenarios {
                for handler in handlers {
                    let report = await Simulator.runSeeds(scenario, handler, firstSeed: firstSeed, count: seeds, options: options)
                    var result = SimulationResult(scenario: scenario, report: report, store: store)
                    if let failure = report.firstFailure, scenarios.count == 1 || handler == .guarded {
                        result.shrunk = await Simulator.shrink(failure, scenario: scenario, options: options, budget: shrinkBudget)
                    }
                    if trace, results.isEmpty {
                        result.fullTrace = await Simulator.run(scenario, handler, seed: firstSeed, options: traced).trace
                    }
                    if !json { print(result.text(detailed: scenarios.count == 1)) }
                    results.append(result)
                }
            }
            if json {
                print(SimulationResult.json(results))
            } else if results.count > 1 {
                print(SimulationResult.summary(results))
            }
            var written = true
            if let html {
                var panels: [Timeline.Panel] = []
                for result in results {
                    let name = "\(result.scenario.name) · \(result.report.handler.rawValue) handler"
                    if let shrunk = result.shrunk {
                        let title = "\(name) · seed \(shrunk.original.seed.map(String.init) ?? "?"), shrunk to \(shrunk.shrunk.steps) steps"
                        panels.append(Timeline.Panel(shrunk.shrunk, title: title))
                    } else {
                        // The failing seed when one failed (drawn unshrunk), else the first seed.
                        let seed = result.report.firstFailure?.seed ?? firstSeed
                        let run = await Simulator.run(result.scenario, result.report.handler, seed: seed, options: traced)
                        panels.append(Timeline.Panel(run, title: "\(name) · seed \(seed)"))
                    }
                }
                let page = Timeline(title: "unrace simulate · seed \(firstSeed)", panels: panels).html()
                written = writeOutputFile(page, to: html)
            }
            // A guarded violation outranks a file that could not be written.
            if results.contains(where: { $0.report.handler == .guarded && $0.report.failingSeeds > 0 }) {
                throw ExitCode(1)
            }
            if !written { throw ExitCode(2) }
        }

        var options: SimulationOptions {
            var options = SimulationOptions()
            options.store = store
            if let logLevel {
                var logger = Logger(label: "unrace.simulate", factory: { label in StreamLogHandler.standardError(label: label) })
                logger.logLevel = logLevel
                options.logger = logger
            }
            return options
        }

        var traced: SimulationOptions {
            var options = options
            options.tracing = true
            return options
        }
    }
}

extension HandlerKind: ExpressibleByArgument {}
extension SimulationStoreKind: ExpressibleByArgument {}

/// Parses a seed: a whole number from 0 to `UInt64.max`, with a message that says so.
enum Seed {
    static func parse(_ text: String) throws -> UInt64 {
        guard let seed = UInt64(text) else {
            throw ValidationError("a seed is a whole number from 0 to \(UInt64.max); got '\(text.prefix(40))'")
        }
        return seed
    }
}
extension Logger.Level: @retroactive ExpressibleByArgument {}
