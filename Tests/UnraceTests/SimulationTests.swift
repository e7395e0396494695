import Foundation
import Testing
@_spi(Testing) import Unrace
@_spi(Testing) import UnraceSimulation

/// The deterministic simulator: reproducible runs, naive anomalies found, guards proven,
/// checkers with teeth, shrinking.
@Suite("Simulator")
struct SimulationTests {
    /// Seeds per guarded scenario in the suite (`UNRACE_SIMULATION_SEEDS`, default 300); the
    /// 10,000-seed proof is `unrace simulate --handler guarded --seeds 10000`.
    static let guardedSeeds = ProcessInfo.processInfo.environment["UNRACE_SIMULATION_SEEDS"].flatMap(Int.init) ?? 300

    static let scenarioNames = Scenario.all.map(\.name)

    @Test("the same seed gives a byte-identical trace in two runs", arguments: scenarioNames)
    func sameSeedSameTrace(name: String) async throws {
        let scenario = try #require(Scenario.named(name))
        var options = SimulationOptions()
        options.tracing = true
        for handler in HandlerKind.allCases {
            for seed: UInt64 in [1, 99, 4_242] {
                let first = await Simulator.run(scenario, handler, seed: seed, options: options)
                let second = await Simulator.run(scenario, handler, seed: seed, options: options)
                #expect(first.trace.count > 3, "a trace has a header and steps")
                #expect(first.trace == second.trace, "\(name) \(handler) seed \(seed)")
                #expect(first.choices == second.choices)
            }
        }
    }

    /// Digests of traces produced by the release build (`swift run -c release unrace simulate
    /// --scenario S --handler H --seed N --trace --json`, field `traceDigest`). The suite runs
    /// in debug: equal digests mean debug and release runs are byte-identical.
    static let releaseDigests: [(scenario: String, handler: HandlerKind, seed: UInt64, digest: String)] = [
        ("payment-capture", .guarded, 7, "d88a6fa891d2a84938205b817dad4305469cebe60ac26311ba2c24aa49ad3488"),
        ("order-lifecycle", .naive, 11, "acf7a4b936aaf577075d49d23a9a34bddbce59b7a3a812ff0f4fec5c04ed59ab"),
        ("zombie-holder", .guarded, 23, "d1ae668d4833c104a6a0f062fd15ab1e8f15600feb00afde76d007ccdf74befc"),
    ]

    @Test("debug runs give the release build's traces, byte for byte")
    func debugEqualsRelease() async throws {
        var options = SimulationOptions()
        options.tracing = true
        for expected in Self.releaseDigests {
            let scenario = try #require(Scenario.named(expected.scenario))
            let run = await Simulator.run(scenario, expected.handler, seed: expected.seed, options: options)
            #expect(run.traceDigest == expected.digest, "\(expected.scenario) \(expected.handler) seed \(expected.seed)")
        }
    }

    @Test("every naive scenario shows its anomaly within the first 1,000 seeds", arguments: scenarioNames)
    func naiveShowsAnomaly(name: String) async throws {
        let scenario = try #require(Scenario.named(name))
        let report = await Simulator.runSeeds(scenario, .naive, firstSeed: 1, count: 1_000)
        let failure = try #require(report.firstFailure, "\(name): no anomaly in 1,000 naive seeds")
        #expect(scenario.invariants.contains(failure.violations[0].invariant))
    }

    @Test("every guarded scenario keeps its invariants", arguments: scenarioNames)
    func guardedHolds(name: String) async throws {
        let scenario = try #require(Scenario.named(name))
        let report = await Simulator.runSeeds(scenario, .guarded, firstSeed: 1, count: Self.guardedSeeds)
        #expect(report.failingSeeds == 0, "\(name): seed \(report.firstFailure?.seed ?? 0) broke \(report.firstFailure?.violations ?? [])")
        #expect(report.steps > report.seeds * 3, "the runs did work")
    }

    /// Seeds per guarded scenario on the shipping SQLite store (a fresh file per run).
    static let sqliteSeeds = ProcessInfo.processInfo.environment["UNRACE_SIMULATION_SQLITE_SEEDS"].flatMap(Int.init) ?? 25

    static var onSQLite: SimulationOptions {
        var options = SimulationOptions()
        options.store = .sqlite
        return options
    }

    @Test("on the shipping SQLite store, every guarded scenario keeps its invariants", arguments: scenarioNames)
    func guardedHoldsOnSQLite(name: String) async throws {
        let scenario = try #require(Scenario.named(name))
        let report = await Simulator.runSeeds(scenario, .guarded, firstSeed: 1, count: Self.sqliteSeeds, options: Self.onSQLite)
        #expect(report.failingSeeds == 0, "\(name): seed \(report.firstFailure?.seed ?? 0) broke \(report.firstFailure?.violations ?? [])")
        #expect(report.steps > report.seeds * 3, "the runs did work")
    }

    @Test("on SQLite, every naive scenario still breaks, at the seed it breaks on memory", arguments: scenarioNames)
    func naiveBreaksOnSQLite(name: String) async throws {
        let scenario = try #require(Scenario.named(name))
        let failure = try #require(await Simulator.runSeeds(scenario, .naive, firstSeed: 1, count: 1_000).firstFailure)
        let onSQLite = await Simulator.run(scenario, .naive, seed: try #require(failure.seed), options: Self.onSQLite)
        #expect(onSQLite.violations == failure.violations)
    }

    @Test("a seed gives the same trace on SQLite as on memory, run after run", arguments: scenarioNames)
    func sameTraceOnEveryStore(name: String) async throws {
        let scenario = try #require(Scenario.named(name))
        var memory = SimulationOptions()
        memory.tracing = true
        var sqlite = Self.onSQLite
        sqlite.tracing = true
        for handler in HandlerKind.allCases {
            for seed: UInt64 in [2, 77] {
                let expected = await Simulator.run(scenario, handler, seed: seed, options: memory)
                for _ in 0..<2 {
                    let run = await Simulator.run(scenario, handler, seed: seed, options: sqlite)
                    #expect(run.traceDigest == expected.traceDigest, "\(name) \(handler) seed \(seed)")
                }
            }
        }
    }

    @Test("without the fence check, the simulator finds a zombie's write")
    func fenceCheckHasTeeth() async throws {
        var options = SimulationOptions()
        options.disabledGuards = .fencing
        let report = await Simulator.runSeeds(
            try #require(Scenario.named("zombie-holder")),
            .guarded,
            firstSeed: 1,
            count: 1_000,
            options: options
        )
        #expect(report.firstFailure?.violations.first?.invariant == "no-write-from-fenced-holder")
    }

    @Test("without the version comparison, the simulator finds a lost update")
    func versionCheckHasTeeth() async throws {
        var options = SimulationOptions()
        options.disabledGuards = .versionCheck
        let report = await Simulator.runSeeds(
            try #require(Scenario.named("wallet")),
            .guarded,
            firstSeed: 1,
            count: 1_000,
            options: options
        )
        let failure = try #require(report.firstFailure)
        #expect(["money-conserved", "no-overdraft"].contains(failure.violations[0].invariant))
    }

    @Test("the seed's lost-update timeline shrinks to at most 12 steps")
    func lostUpdateShrinks() async throws {
        let scenario = try #require(Scenario.named("wallet"))
        let report = await Simulator.runSeeds(scenario, .naive, firstSeed: 1, count: 1_000)
        let failure = try #require(report.firstFailure)
        let shrunk = await Simulator.shrink(failure, scenario: scenario)
        #expect(shrunk.shrunk.failed)
        #expect(shrunk.shrunk.violations[0].invariant == failure.violations[0].invariant)
        #expect(shrunk.shrunk.steps <= 12, "shrunk to \(shrunk.shrunk.steps) steps:\n\(shrunk.shrunk.trace.joined(separator: "\n"))")
        #expect(shrunk.shrunk.steps <= shrunk.original.steps)
        // Both clients read the same balance before either writes: the race of the seed.
        let reads = shrunk.shrunk.trace.filter { $0.contains("read balance 100") }
        #expect(reads.count == 2)
    }

    @Test("a shrunk run replays to the same failure")
    func shrunkRunReplays() async throws {
        let scenario = try #require(Scenario.named("payment-capture"))
        let report = await Simulator.runSeeds(scenario, .naive, firstSeed: 1, count: 1_000)
        let shrunk = await Simulator.shrink(try #require(report.firstFailure), scenario: scenario, budget: 500)
        let replayed = await Simulator.replay(scenario, .naive, choices: shrunk.shrunk.choices)
        #expect(replayed.violations == shrunk.shrunk.violations)
        #expect(replayed.steps == shrunk.shrunk.steps)
    }

    @Test(
        "the simulator's public API at its edges answers instead of trapping: a clean run shrunk, no seeds swept, an empty choice, a barrier of 0 or past its parties"
    )
    func apiEdges() async throws {
        let scenario = try #require(Scenario.named("wallet"))
        let clean = await Simulator.run(scenario, .guarded, seed: 1)
        #expect(!clean.failed)
        let shrunk = await Simulator.shrink(clean, scenario: scenario)
        #expect(shrunk.attempts == 0 && shrunk.shrunk.choices == clean.choices)
        let rows = await Sweep.run(scenario, firstSeed: 1, seeds: 0)
        #expect(!rows.isEmpty && rows.allSatisfy { $0.naiveRate == 0 && $0.guardedRate == 0 })
        var choices = Choices(replaying: [7, 9])
        #expect(choices.below(0) == 0 && choices.below(-3) == 0)
        #expect(choices.recorded == [7, 9], "an empty choice still takes its draw")
        let nobody = Barrier(parties: 0)
        await nobody.arriveAndWait()
        let two = Barrier(parties: 2)
        async let first: Void = two.arriveAndWait()
        await two.arriveAndWait()
        await first
        await two.arriveAndWait()  // after the release: passes at once
    }

    @Test("the mistaken fixes lower the naive anomaly rate without removing it; the guard removes it")
    func mistakenFixes() async throws {
        let rows = await Sweep.run(try #require(Scenario.named("payment-capture")), firstSeed: 1, seeds: 200)
        for fix in ["visibility timeout", "consumers", "added delay"] {
            let series = rows.filter { $0.fix == fix }
            #expect(series.count == 4)
            #expect(series.last!.naiveRate < series.first!.naiveRate, "\(fix): \(series.map(\.naiveRate))")
            #expect(series.allSatisfy { $0.naiveRate > 0 }, "\(fix): \(series.map(\.naiveRate))")
            #expect(series.allSatisfy { $0.guardedRate == 0 })
        }
    }

    @Test("knobs outside their ranges are clamped into them, and every scenario runs with them (no trap)")
    func knobsAtTheBounds() async throws {
        var options = SimulationOptions()
        options.knobs.consumers = 0
        options.knobs.visibilityMultiplier = .max
        options.knobs.addedDelay = .min
        #expect(options.knobs.consumers == 1 && options.knobs.visibilityMultiplier == 8 && options.knobs.addedDelay == 0)
        options.knobs.consumers = .max
        options.knobs.visibilityMultiplier = .min
        options.knobs.addedDelay = .max
        #expect(options.knobs.consumers == 64 && options.knobs.visibilityMultiplier == 1 && options.knobs.addedDelay == 60_000)
        options.knobs.consumers = -5
        for scenario in Scenario.all {
            for handler in HandlerKind.allCases { _ = await Simulator.run(scenario, handler, seed: 1, options: options) }
        }
    }

    @Test("the broker redelivers, and the guarded handler absorbs every redelivery")
    func brokerRedelivers() async throws {
        // Over many seeds of order creation, some message must have been delivered more than
        // once (the race's precondition) — and the guarded handler must still be clean.
        var options = SimulationOptions()
        options.tracing = true
        var redelivered = false
        for seed: UInt64 in 1...200 where !redelivered {
            let run = await Simulator.run(try #require(Scenario.named("order-creation")), .guarded, seed: seed, options: options)
            redelivered = run.trace.contains { $0.contains("attempt 2") }
            #expect(!run.failed)
        }
        #expect(redelivered)
    }
}

/// `unrace simulate` as a user runs it.
@Suite("unrace simulate")
struct SimulateCommandTests {
    @Test("--list names every scenario, one per line")
    func list() async throws {
        let child = try ChildProcess(["simulate", "--list"])
        #expect(await child.exitStatus() == 0)
        #expect(child.printed.split(separator: "\n").map(String.init) == Scenario.all.map(\.name))
    }

    @Test("--json reports the seeds, the first violation with its reproduction, and the speed")
    func json() async throws {
        let child = try ChildProcess(["simulate", "--scenario", "wallet", "--handler", "naive", "--seed", "1", "--seeds", "100", "--json"])
        #expect(await child.exitStatus() == 0, "a naive violation is expected, not a failure")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(child.printed.utf8)) as? [String: Any])
        #expect(object["scenario"] as? String == "wallet")
        #expect(object["handler"] as? String == "naive")
        #expect(object["seeds"] as? Int == 100)
        #expect((object["violations"] as? Int ?? 0) > 0)
        #expect((object["steps"] as? Int ?? 0) > 0)
        #expect((object["stepsPerSecond"] as? Double ?? 0) > 0)
        let first = try #require(object["firstViolation"] as? [String: Any])
        let seed = try #require(first["seed"] as? UInt64)
        #expect(first["invariant"] as? String == "money-conserved")
        #expect(first["repro"] as? String == "unrace simulate --scenario wallet --handler naive --seed \(seed)")
        #expect((first["shrunkSteps"] as? Int ?? 99) <= 12)
    }

    @Test("every scenario at once: --json sums the runs under the same keys")
    func jsonForAll() async throws {
        let child = try ChildProcess(["simulate", "--handler", "guarded", "--seed", "1", "--seeds", "20", "--json"])
        #expect(await child.exitStatus() == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(child.printed.utf8)) as? [String: Any])
        #expect(object["scenario"] as? String == "all")
        #expect(object["handler"] as? String == "guarded")
        #expect(object["seeds"] as? Int == 20)
        #expect(object["violations"] as? Int == 0)
        #expect(object["firstViolation"] is NSNull)
        #expect((object["runs"] as? [Any])?.count == Scenario.all.count)
        #expect((object["stepsPerSecond"] as? Double ?? 0) > 0)
    }

    @Test("--store sqlite runs on the SQLite store and says so, in the reproduction too")
    func sqliteStore() async throws {
        let child = try ChildProcess([
            "simulate", "--store", "sqlite", "--scenario", "clock-skew", "--handler", "naive", "--seed", "1", "--seeds", "30", "--json",
        ])
        #expect(await child.exitStatus() == 0)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(child.printed.utf8)) as? [String: Any])
        #expect(object["store"] as? String == "sqlite")
        let first = try #require(object["firstViolation"] as? [String: Any])
        #expect(first["invariant"] as? String == "no-early-takeover")
        #expect((first["repro"] as? String)?.hasSuffix("--store sqlite") == true)
    }

    @Test(
        "the shrunk trace ends with the headline's invariant, though the run broke others too",
        arguments: [("inventory", "25", "stock-conserved"), ("order-lifecycle", "55", "final-state-in-order")]
    )
    func shrunkTraceNamesTheHeadline(scenario: String, seed: String, invariant: String) async throws {
        let child = try ChildProcess(["simulate", "--scenario", scenario, "--handler", "naive", "--seed", seed])
        #expect(await child.exitStatus() == 0)
        let lines = child.printed.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasPrefix("✗ seed \(seed) broke \(invariant):") }, "\(child.printed)")
        let traceEnd = lines.first { $0.hasPrefix("    ✗ ") }
        #expect(traceEnd?.hasPrefix("    ✗ \(invariant):") == true, "\(child.printed)")
    }

    @Test("a guarded run prints the seed first and exits 0 with no violation")
    func guardedText() async throws {
        let child = try ChildProcess(["simulate", "--scenario", "zombie-holder", "--handler", "guarded", "--seed", "5", "--seeds", "50"])
        #expect(await child.exitStatus() == 0)
        #expect(child.printed.hasPrefix("seed 5 "))
        #expect(child.printed.contains("0 of 50 seeds broke an invariant"))
    }
}
