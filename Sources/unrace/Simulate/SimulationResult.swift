import Foundation
import Unrace
import UnraceSimulation

/// One scenario × handler of `unrace simulate`, and how it is printed.
struct SimulationResult {
    let scenario: Scenario
    let report: SeedsReport
    let store: SimulationStoreKind
    var shrunk: ShrunkRun?
    var fullTrace: [String]?

    init(scenario: Scenario, report: SeedsReport, store: SimulationStoreKind = .memory) {
        self.scenario = scenario
        self.report = report
        self.store = store
    }

    var repro: String? {
        report.firstFailure.map {
            "unrace simulate --scenario \(scenario.name) --handler \(report.handler.rawValue) --seed \($0.seed ?? 0)"
                + (store == .memory ? "" : " --store \(store.rawValue)")
        }
    }

    func text(detailed: Bool) -> String {
        var lines: [String] = []
        let rate = String(format: "%.0f", report.stepsPerSecond)
        lines.append(
            "\(scenario.name) · \(report.handler.rawValue): \(report.failingSeeds) of \(report.seeds) seeds broke an invariant"
                + " · \(report.steps) steps, \(rate) steps/s"
        )
        if let fullTrace {
            lines.append("trace:")
            lines += fullTrace.map { "  \($0)" }
        }
        if let failure = report.firstFailure, let repro, detailed || report.handler == .guarded {
            let violation = failure.violations[0]
            lines.append("✗ seed \(failure.seed ?? 0) broke \(violation.invariant): \(violation.detail)")
            lines.append("  reproduce: \(repro)")
            if let shrunk {
                lines.append(
                    "  shrunk from \(shrunk.original.steps) steps (\(shrunk.original.choices.count) choices)"
                        + " to \(shrunk.shrunk.steps) steps (\(shrunk.shrunk.choices.count) choices) in \(shrunk.attempts) tries:"
                )
                lines += shrunk.shrunk.trace.map { "    \($0)" }
                // The shrunk run still breaks the headline's invariant (the shrinker keeps only
                // such runs); it may break others too, which come after it.
                let violations = shrunk.shrunk.violations
                let seen =
                    violations.filter { $0.invariant == violation.invariant } + violations.filter { $0.invariant != violation.invariant }
                lines += seen.map { "    ✗ \($0.invariant): \($0.detail)" }
            }
        }
        return lines.joined(separator: "\n")
    }

    /// Steps, seconds, failing seeds and guarded failing seeds over several results.
    static func totals(_ results: [SimulationResult]) -> (steps: Int, seconds: Double, failures: Int, guardedFailures: Int) {
        results.reduce(into: (0, 0.0, 0, 0)) { total, result in
            total.steps += result.report.steps
            total.seconds += result.report.seconds
            total.failures += result.report.failingSeeds
            if result.report.handler == .guarded { total.guardedFailures += result.report.failingSeeds }
        }
    }

    static func summary(_ results: [SimulationResult]) -> String {
        let (steps, seconds, _, guardedFailures) = totals(results)
        return
            "total: \(steps) steps in \(String(format: "%.1f", seconds)) s = \(String(format: "%.0f", Double(steps) / max(seconds, 1e-9))) steps/s on one core;"
            + " guarded violations: \(guardedFailures)"
    }

    var jsonObject: [String: Any] {
        var object: [String: Any] = [
            "scenario": scenario.name, "race": scenario.race, "handler": report.handler.rawValue, "store": store.rawValue,
            "firstSeed": report.firstSeed, "seeds": report.seeds, "violations": report.failingSeeds,
            "steps": report.steps, "stepsPerSecond": (report.stepsPerSecond * 10).rounded() / 10, "seconds": report.seconds,
            "firstViolation": NSNull(),
        ]
        if let failure = report.firstFailure, let repro {
            var first: [String: Any] = [
                "seed": failure.seed ?? 0, "invariant": failure.violations[0].invariant,
                "detail": failure.violations[0].detail, "repro": repro,
            ]
            if let shrunk {
                first["originalSteps"] = shrunk.original.steps
                first["shrunkSteps"] = shrunk.shrunk.steps
                first["shrunkTrace"] = shrunk.shrunk.trace
            }
            object["firstViolation"] = first
        }
        if let fullTrace {
            object["trace"] = fullTrace
            object["traceDigest"] = Fingerprint.text(fullTrace.joined(separator: "\n")).hex
        }
        return object
    }

    /// One object for one scenario × handler; for several, the same keys summed over all of
    /// them (the first violation is a guarded one if there is any) plus `runs`.
    static func json(_ results: [SimulationResult]) -> String {
        let value: [String: Any]
        if results.count == 1 {
            value = results[0].jsonObject
        } else {
            let (steps, seconds, failures, guardedFailures) = totals(results)
            let handlers = Set(results.map(\.report.handler))
            let scenarios = Set(results.map(\.scenario.name))
            let first =
                results.first { $0.report.handler == .guarded && $0.report.firstFailure != nil }
                ?? results.first { $0.report.firstFailure != nil }
            value = [
                "scenario": scenarios.count == 1 ? results[0].scenario.name : "all",
                "handler": handlers.count == 1 ? results[0].report.handler.rawValue : "both", "store": results[0].store.rawValue,
                "firstSeed": results[0].report.firstSeed, "seeds": results[0].report.seeds,
                "violations": failures, "guardedViolations": guardedFailures,
                "firstViolation": first?.jsonObject["firstViolation"] ?? NSNull(),
                "steps": steps, "seconds": seconds,
                "stepsPerSecond": seconds > 0 ? (Double(steps) / seconds * 10).rounded() / 10 : 0,
                "runs": results.map(\.jsonObject),
            ]
        }
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
