import ArgumentParser
import Foundation
import UnraceSimulation

/// `unrace simulate sweep`: the typical mistaken fixes, measured.
struct SweepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Measure the mistaken fixes: a longer visibility timeout, fewer consumers, added delays.",
        discussion: """
            For each setting, runs the same seeds with the naive and the guarded handler and prints \
            the share of runs with an anomaly: the naive rate falls but, for a scenario with an \
            external effect (payment-capture, the default), does not reach zero; the guarded rate \
            is zero. (A scenario whose effect is local — order-creation, inventory-reservation, \
            coupon-redemption — shows 0 naive anomalies with one consumer: its check and write \
            share a transaction, and one consumer never overlaps itself.)
            """
    )

    @Option(help: "A double-execution scenario.")
    var scenario = "payment-capture"
    @Option(help: "Seeds per setting (10 to 100,000).")
    var seeds = 500
    @Option(parsing: .unconditional, help: "The first seed, 0 to 18446744073709551615.", transform: Seed.parse)
    var seed: UInt64 = 1
    @Flag(help: "Print the results as JSON.")
    var json = false

    func validate() throws {
        guard let found = Scenario.named(scenario), found.race == "double-execution" else {
            throw ValidationError("--scenario must be a double-execution scenario (see `unrace simulate --list`)")
        }
        guard (10...100_000).contains(seeds) else { throw ValidationError("--seeds must be between 10 and 100,000") }
        guard UInt64.max - seed >= UInt64(seeds - 1) else {
            throw ValidationError("--seed \(seed) with --seeds \(seeds) would run past the last seed, 18446744073709551615")
        }
    }

    func run() async throws {
        let rows = await Sweep.run(Scenario.named(scenario)!, firstSeed: seed, seeds: seeds)
        if json {
            let objects: [[String: Any]] = rows.map {
                ["fix": $0.fix, "setting": $0.setting, "naiveRate": $0.naiveRate, "guardedRate": $0.guardedRate, "seeds": seeds]
            }
            let data = try JSONSerialization.data(
                withJSONObject: ["scenario": scenario, "firstSeed": seed, "rows": objects],
                options: [.sortedKeys]
            )
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("seed \(seed) (\(seeds) seeds per setting) · \(scenario)")
            print(
                "mistaken fix".padding(toLength: 22, withPad: " ", startingAt: 0)
                    + "setting".padding(toLength: 10, withPad: " ", startingAt: 0)
                    + "naive runs with duplicates   guarded"
            )
            var last = ""
            for row in rows {
                let fix = row.fix == last ? "" : row.fix
                last = row.fix
                print(
                    fix.padding(toLength: 22, withPad: " ", startingAt: 0) + row.setting.padding(toLength: 10, withPad: " ", startingAt: 0)
                        + Self.percent(row.naiveRate).padding(toLength: 29, withPad: " ", startingAt: 0) + Self.percent(row.guardedRate)
                )
            }
        }
        if rows.contains(where: { $0.guardedRate > 0 }) { throw ExitCode(1) }
    }

    static func percent(_ rate: Double) -> String { String(format: "%5.1f%%", rate * 100) }
}
