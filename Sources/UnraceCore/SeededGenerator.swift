/// A small, fast, platform-stable pseudo-random generator: SplitMix64 (Steele, Lea and Flood,
/// 2014), the seeding generator of xoshiro.
///
/// The same seed gives the same sequence on every platform and build mode, so anything decided
/// by it — a demo's handler durations, a test's shuffle — reproduces from the seed alone.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { self.state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniformly distributed integer in `range`, by rejection (no modulo bias), using only
    /// this generator's documented output so it is stable across Swift versions. Any range
    /// works, `Int.min...Int.max` included.
    public mutating func int(in range: ClosedRange<Int>) -> Int {
        // The span in two's complement: exact for every range, 0 for the full 64-bit one.
        let span = UInt64(truncatingIfNeeded: range.upperBound &- range.lowerBound) &+ 1
        if span == 0 { return Int(truncatingIfNeeded: next()) }
        let limit = UInt64.max - UInt64.max % span
        var value = next()
        while value >= limit { value = next() }
        return range.lowerBound &+ Int(truncatingIfNeeded: value % span)
    }

    /// `true` with probability `numerator / denominator`; `false`, drawing nothing, when
    /// `denominator` is 0 or less (no probability).
    public mutating func chance(_ numerator: Int, in denominator: Int) -> Bool {
        guard denominator > 0 else { return false }
        return int(in: 0...(denominator - 1)) < numerator
    }

    /// The elements of `array` in a random order (Fisher–Yates).
    public mutating func shuffled<T>(_ array: [T]) -> [T] {
        var result = array
        guard result.count > 1 else { return result }
        for index in stride(from: result.count - 1, to: 0, by: -1) {
            result.swapAt(index, int(in: 0...index))
        }
        return result
    }
}
