import Testing
import UnraceCore

/// The seeded generator alone: a sequence fixed by its seed, and total over every range.
@Suite("Seeded generator")
struct SeededGeneratorTests {
    @Test("the same seed gives the same sequence, pinned so a change to the algorithm shows")
    func pinned() {
        var generator = SeededGenerator(seed: 42)
        let draws = (0..<5).map { _ in generator.int(in: 0...99) }
        var again = SeededGenerator(seed: 42)
        #expect(draws == (0..<5).map { _ in again.int(in: 0...99) })
        var first = SeededGenerator(seed: 0)
        let output = first.next()
        #expect(output == 0xE220_A839_7B1D_CDAF, "SplitMix64's first output for seed 0")
    }

    @Test("every range works, the 64-bit bounds included, and draws stay inside it")
    func bounds() {
        var generator = SeededGenerator(seed: 7)
        for _ in 0..<1_000 {
            _ = generator.int(in: .min ... .max)
            let ranges: [ClosedRange<Int>] = [.min ... .min, .max ... .max, .max - 1 ... .max, .min ... .min + 2, -1 ... .max, .min...0]
            for range in ranges {
                let draw = generator.int(in: range)
                #expect(range.contains(draw), "\(draw) in \(range)")
            }
        }
    }

    @Test("a chance with no denominator is false and draws nothing; 0 in n never, n in n always")
    func chance() {
        var generator = SeededGenerator(seed: 3)
        var untouched = generator
        let noDenominator = generator.chance(1, in: 0)
        let negative = generator.chance(.max, in: .min)
        #expect(!noDenominator && !negative)
        let (next, expected) = (generator.next(), untouched.next())
        #expect(next == expected, "nothing was drawn")
        for _ in 0..<100 {
            let never = generator.chance(0, in: 10)
            let always = generator.chance(10, in: 10)
            #expect(!never && always)
        }
    }
}
