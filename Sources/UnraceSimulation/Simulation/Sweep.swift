/// The seed's "typical mistaken fixes", measured: each makes double execution rarer, none
/// removes it. Only idempotency at the business boundary does.
public enum Sweep {
    /// One setting of one mistaken fix.
    public struct Row: Sendable, Hashable {
        /// `visibility timeout`, `consumers` or `added delay`.
        public let fix: String
        /// The setting, such as `×4`, `2` or `200ms`.
        public let setting: String
        /// The share of naive runs with an anomaly.
        public let naiveRate: Double
        /// The share of guarded runs with an anomaly (zero).
        public let guardedRate: Double
    }

    /// The settings swept: visibility ×1…×8, consumers 8…1, added delay 0…400 ms.
    public static let settings: [(fix: String, setting: String, knobs: Knobs)] = {
        var settings: [(String, String, Knobs)] = []
        for multiplier: Int64 in [1, 2, 4, 8] {
            var knobs = Knobs()
            knobs.visibilityMultiplier = multiplier
            settings.append(("visibility timeout", "×\(multiplier)", knobs))
        }
        for consumers in [8, 4, 2, 1] {
            var knobs = Knobs()
            knobs.consumers = consumers
            settings.append(("consumers", "\(consumers)", knobs))
        }
        for delay: Int64 in [0, 50, 200, 400] {
            var knobs = Knobs()
            knobs.addedDelay = delay
            settings.append(("added delay", "\(delay)ms", knobs))
        }
        return settings
    }()

    /// Runs `seeds` seeds per setting with both handlers. No seed (a count below 1) runs nothing:
    /// every rate is 0.
    public static func run(_ scenario: Scenario, firstSeed: UInt64, seeds: Int) async -> [Row] {
        func rate(_ failing: Int) -> Double { seeds >= 1 ? Double(failing) / Double(seeds) : 0 }
        var rows: [Row] = []
        for (fix, setting, knobs) in settings {
            var options = SimulationOptions()
            options.knobs = knobs
            let naive = await Simulator.runSeeds(scenario, .naive, firstSeed: firstSeed, count: seeds, options: options)
            let guarded = await Simulator.runSeeds(scenario, .guarded, firstSeed: firstSeed, count: seeds, options: options)
            rows.append(
                Row(
                    fix: fix,
                    setting: setting,
                    naiveRate: rate(naive.failingSeeds),
                    guardedRate: rate(guarded.failingSeeds)
                )
            )
        }
        return rows
    }
}
