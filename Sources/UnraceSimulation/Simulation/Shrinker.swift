/// A failing run made small: the same broken invariant from a shorter, simpler choice sequence.
public struct ShrunkRun: Sendable {
    /// The run as first found.
    public let original: SimulationRun
    /// The smallest failing run found, traced.
    public let shrunk: SimulationRun
    /// How many candidate runs the shrinker tried.
    public let attempts: Int
}

extension Simulator {
    /// The most candidate runs one shrink may try.
    public static let shrinkBudgetMaximum = 20_000

    /// Shrinks a failing run: cuts its choice sequence short, deletes chunks of it and lowers
    /// its values (every choice's first option is the simplest — fewer messages and workers, no
    /// fault, the shortest delay) while the run still breaks the same invariant. A candidate is
    /// kept only if it is simpler: fewer steps, then fewer choices, then smaller ones.
    ///
    /// A run that broke no invariant has nothing to shrink: it comes back as it is, with no attempt.
    ///
    /// - Parameter budget: the most candidate runs to try (at most ``shrinkBudgetMaximum``).
    public static func shrink(
        _ failing: SimulationRun,
        scenario: Scenario,
        options: SimulationOptions = .init(),
        budget: Int = 2_000
    ) async -> ShrunkRun {
        await onSimulationThread { shrinkNow(failing, scenario: scenario, options: options, budget: budget) }
    }

    static func shrinkNow(_ failing: SimulationRun, scenario: Scenario, options: SimulationOptions, budget: Int) -> ShrunkRun {
        guard failing.failed, let invariant = failing.violations.first?.invariant else {
            return ShrunkRun(original: failing, shrunk: failing, attempts: 0)
        }
        let budget = min(max(0, budget), shrinkBudgetMaximum)
        var quiet = options
        quiet.tracing = false
        var best = failing
        var attempts = 0

        func attempt(_ candidate: [UInt64]) -> Bool {
            guard attempts < budget, candidate != best.choices else { return false }
            attempts += 1
            let run = runNow(scenario, failing.handler, choices: Choices(replaying: candidate), seed: nil, options: quiet)
            guard run.violations.contains(where: { $0.invariant == invariant }), isSimpler(run, than: best) else { return false }
            best = run
            return true
        }

        var improved = true
        while improved, attempts < budget {
            improved = false
            // Cut the tail: the rest of the run takes its simplest options.
            var keep = best.choices.count / 2
            while keep > 0 {
                if attempt(Array(best.choices.prefix(keep))) { improved = true }
                keep /= 2
            }
            // Delete chunks, large to small.
            for size in [32, 16, 8, 4, 2, 1] {
                var index = 0
                while index < best.choices.count, attempts < budget {
                    var candidate = best.choices
                    candidate.removeSubrange(index..<min(index + size, candidate.count))
                    if attempt(candidate) { improved = true } else { index += size }
                }
            }
            // Simplify values: zero, then smaller.
            for index in best.choices.indices where index < best.choices.count && best.choices[index] != 0 {
                let value = best.choices[index]
                for smaller in [0, value % 1_000, value / 2] where smaller < value {
                    var candidate = best.choices
                    candidate[index] = smaller
                    if attempt(candidate) {
                        improved = true
                        break
                    }
                }
            }
        }
        var traced = options
        traced.tracing = true
        let shrunk = runNow(scenario, failing.handler, choices: Choices(replaying: best.choices), seed: nil, options: traced)
        return ShrunkRun(original: failing, shrunk: shrunk, attempts: attempts)
    }

    static func isSimpler(_ run: SimulationRun, than other: SimulationRun) -> Bool {
        if run.steps != other.steps { return run.steps < other.steps }
        if run.choices.count != other.choices.count { return run.choices.count < other.choices.count }
        return run.choices.lexicographicallyPrecedes(other.choices)
    }
}
