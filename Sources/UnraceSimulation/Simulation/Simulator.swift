import Foundation
public import Logging
@_spi(Testing) public import Unrace

/// What one simulated run did.
public struct SimulationRun: Sendable {
    /// The scenario's name.
    public let scenario: String
    /// The handler it ran.
    public let handler: HandlerKind
    /// The seed, or `nil` for a replayed (shrunk) choice sequence.
    public let seed: UInt64?
    /// Every broken invariant; empty when the run was correct.
    public let violations: [Violation]
    /// Scheduling points passed.
    public let steps: Int
    /// The readable trace (header lines, then one line per step), when traced.
    public let trace: [String]
    /// The run's choice sequence: replaying it reproduces the run.
    public let choices: [UInt64]

    /// Whether an invariant broke.
    public var failed: Bool { !violations.isEmpty }

    /// SHA-256 of the trace (lines joined by newlines), hex: equal digests, identical runs.
    public var traceDigest: String { Fingerprint.text(trace.joined(separator: "\n")).hex }
}

/// How runs are made.
public struct SimulationOptions: Sendable {
    /// Keep a readable trace (slower).
    public var tracing = false
    /// The mistaken fixes' settings.
    public var knobs = Knobs()
    /// The store the run is built on. Default: memory, the fastest.
    public var store: SimulationStoreKind = .memory
    /// Where the Unrace API types of a run log (retried updates, takeovers). Default: nowhere —
    /// the trace is the run's record; `unrace simulate --log-level notice` shows them.
    public var logger: Logger = World.silent
    /// Guards switched off to test the checkers. Never set outside such tests.
    @_spi(Testing) public var disabledGuards: DisabledGuards = []

    /// Default options: no trace, the scenario's own settings, every guard on.
    public init() {}
}

/// Many seeds of one scenario and handler.
public struct SeedsReport: Sendable {
    /// The scenario's name.
    public let scenario: String
    /// The handler.
    public let handler: HandlerKind
    /// The first seed run.
    public let firstSeed: UInt64
    /// How many seeds ran.
    public let seeds: Int
    /// How many seeds broke an invariant.
    public let failingSeeds: Int
    /// The first failing run, if any.
    public let firstFailure: SimulationRun?
    /// Scheduling points over all runs.
    public let steps: Int
    /// Wall-clock seconds the runs took (on one thread).
    public let seconds: Double

    /// Steps per wall-clock second, on one core.
    public var stepsPerSecond: Double { seconds > 0 ? Double(steps) / seconds : 0 }
}

/// Runs scenarios deterministically: one seed, one run, the same trace every time.
///
/// Runs execute on a thread of their own with a single-threaded task executor, one seed after
/// another: the reported speed is one core's. At most one such thread per core runs at once in a
/// process (``run(_:_:seed:options:)``, ``replay(_:_:choices:options:)``, ``runSeeds(_:_:firstSeed:count:options:)``
/// and ``shrink(_:scenario:options:budget:)`` share the turns); more concurrent calls wait, suspended, for a turn, so runs
/// never take every core from the rest of the process.
public enum Simulator {
    /// Runs `scenario` with `handler` from `seed`.
    public static func run(
        _ scenario: Scenario,
        _ handler: HandlerKind,
        seed: UInt64,
        options: SimulationOptions = .init()
    ) async -> SimulationRun {
        await onSimulationThread { runNow(scenario, handler, choices: choices(scenario, seed), seed: seed, options: options) }
    }

    /// Runs `scenario` with `handler` by replaying a recorded choice sequence.
    public static func replay(
        _ scenario: Scenario,
        _ handler: HandlerKind,
        choices: [UInt64],
        options: SimulationOptions = .init()
    ) async -> SimulationRun {
        await onSimulationThread { runNow(scenario, handler, choices: Choices(replaying: choices), seed: nil, options: options) }
    }

    /// Runs `count` seeds from `firstSeed`, one after another on one thread.
    public static func runSeeds(
        _ scenario: Scenario,
        _ handler: HandlerKind,
        firstSeed: UInt64,
        count: Int,
        options: SimulationOptions = .init()
    ) async -> SeedsReport {
        await onSimulationThread {
            var failing = 0
            var first: SimulationRun?
            var steps = 0
            let started = DispatchTime.now().uptimeNanoseconds
            for offset in 0..<UInt64(max(0, count)) {
                let seed = firstSeed &+ offset
                let run = runNow(scenario, handler, choices: choices(scenario, seed), seed: seed, options: options)
                steps += run.steps
                if run.failed {
                    failing += 1
                    if first == nil { first = run }
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            return SeedsReport(
                scenario: scenario.name,
                handler: handler,
                firstSeed: firstSeed,
                seeds: count,
                failingSeeds: failing,
                firstFailure: first,
                steps: steps,
                seconds: seconds
            )
        }
    }

    /// A seed's choices for a scenario: the generator starts from the seed mixed with the
    /// scenario's name (64-bit FNV-1a), so scenarios of the same shape do not replay one
    /// another's runs, and the number a user types stays the seed.
    static func choices(_ scenario: Scenario, _ seed: UInt64) -> Choices {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in scenario.name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return Choices(seed: seed ^ hash)
    }

    /// Draws the world's faults, builds `scenario` in it, runs its actors and checks it; then lets
    /// go of what the actors captured (``World/end()``), so the world is freed with the run.
    static func play(_ scenario: Scenario, _ handler: HandlerKind, in world: World, knobs: Knobs) async -> [Violation] {
        world.faults = FaultMix.draw(
            scenario.faults,
            pauseLength: scenario.pauseLength,
            skewLength: scenario.skewLength,
            choices: &world.choices
        )
        defer { world.end() }
        do {
            let check = try await scenario.build(world, handler, knobs)
            await world.run()
            return try await check()
        } catch {
            return [Violation("run-completed", "the run failed: \(error)")]
        }
    }

    /// One run, blocking the calling thread.
    static func runNow(
        _ scenario: Scenario,
        _ handler: HandlerKind,
        choices: Choices,
        seed: UInt64?,
        options: SimulationOptions
    ) -> SimulationRun {
        SimulationExecutor.run {
            let backend: SimulationBackend
            do {
                backend = try await SimulationBackend.make(options.store)
            } catch {
                return SimulationRun(
                    scenario: scenario.name,
                    handler: handler,
                    seed: seed,
                    violations: [Violation("run-completed", "the run's store could not be opened: \(error)")],
                    steps: 0,
                    trace: [],
                    choices: []
                )
            }
            defer { backend.close() }
            let world = World(
                choices: choices,
                tracing: options.tracing,
                backend: backend,
                disabledGuards: options.disabledGuards,
                logger: options.logger
            )
            let violations = await play(scenario, handler, in: world, knobs: options.knobs)
            var trace: [String] = []
            if let steps = world.scheduler.trace {
                trace.append(
                    "\(seed.map { "seed \($0)" } ?? "replayed choices") · \(scenario.name) (\(scenario.race)) · \(handler.rawValue) handler"
                )
                trace.append("faults: \(world.faults)")
                trace += world.header
                trace += steps
            }
            return SimulationRun(
                scenario: scenario.name,
                handler: handler,
                seed: seed,
                violations: violations,
                steps: world.scheduler.steps,
                trace: trace,
                choices: world.choices.recorded
            )
        }
    }
}
