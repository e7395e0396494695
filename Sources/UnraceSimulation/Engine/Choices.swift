import Unrace

/// Where every decision of a simulated run comes from: fresh draws from a seeded generator, or
/// a recorded sequence being replayed (and shrunk).
///
/// Each decision is one draw of 64 bits, mapped to its range by `draw % count`; the first
/// option of every range is the simplest one (no fault, the shortest delay, the first
/// candidate). A replayed sequence that runs out answers 0 from then on, so the shrinker can
/// cut the tail of a run and get its simplest continuation. The algorithm (SplitMix64, then
/// modulo) is plain integer arithmetic: the same seed gives the same run on every platform and
/// in debug and release builds.
public struct Choices: Sendable {
    private var generator: SeededGenerator
    private let replay: [UInt64]?
    private var index = 0
    /// Every draw made so far, in order: the run's choice sequence.
    public private(set) var recorded: [UInt64] = []

    /// Fresh choices from `seed`.
    public init(seed: UInt64) {
        generator = SeededGenerator(seed: seed)
        replay = nil
    }

    /// Replays `sequence`, answering 0 once it runs out.
    public init(replaying sequence: [UInt64]) {
        generator = SeededGenerator(seed: 0)
        replay = sequence
    }

    /// The next raw draw.
    public mutating func draw() -> UInt64 {
        let value: UInt64
        if let replay {
            value = index < replay.count ? replay[index] : 0
            index += 1
        } else {
            value = generator.next()
        }
        recorded.append(value)
        return value
    }

    /// A number in `0..<count`; a draw of 0 gives 0. A `count` below 1 (no option) gives 0, and
    /// still takes a draw, so the choices after it stay in step.
    public mutating func below(_ count: Int) -> Int {
        let value = draw()
        return count >= 1 ? Int(value % UInt64(count)) : 0
    }

    /// A number in `range` (any range, the whole of `Int` too); a draw of 0 gives the lower bound.
    public mutating func inRange(_ range: ClosedRange<Int>) -> Int {
        // The span in two's complement: exact for every range, 0 for the full 64-bit one.
        let span = UInt64(truncatingIfNeeded: range.upperBound &- range.lowerBound) &+ 1
        let value = draw()
        return range.lowerBound &+ Int(truncatingIfNeeded: span == 0 ? value : value % span)
    }

    /// `true` with probability `perMille`/1000; a draw of 0 gives `false` (unless certain).
    public mutating func chance(perMille: Int) -> Bool {
        guard perMille > 0 else { return false }
        return Int(draw() % 1_000) >= 1_000 - perMille
    }
}
