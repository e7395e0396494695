import Testing

@testable import UnraceCore

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

/// Values a caller can build by hand at the 64-bit bounds: their derived properties are total.
@Suite("Values at the 64-bit bounds")
struct BoundValueTests {
    @Test("balance, availability and the next token never trap")
    func derived() {
        var account = Account(id: "a", ledger: 1, code: 1)
        account.debitsPosted = .min
        account.creditsPosted = .max
        #expect(account.balance == .max)
        account.debitsPosted = .max
        account.creditsPosted = .min
        #expect(account.balance == .min)
        #expect(ResourceState(name: "r", capacity: .min, held: 1, confirmed: 0).available == .min)
        #expect(ResourceState(name: "r", capacity: .max, held: .min, confirmed: 0).available == .max)
        #expect(ResourceState(name: "r", capacity: 10, held: 3, confirmed: 2).available == 5)
        #expect(FencingToken(.max).next == FencingToken(.max))
        #expect(FencingToken(1).next == FencingToken(2))
    }

    @Test("the hold and ledger rules stay total on snapshots built by hand at the bounds")
    func rulesAtTheBounds() {
        let now = Timestamp(milliseconds: 1_000)
        let crowded = ResourceState(name: "r", capacity: .max, held: .min, confirmed: 0)
        let (placed, afterPlace) = HoldRule.place(key: "k", units: .max, on: crowded, expiresAt: now)
        #expect(afterPlace?.held == crowded.held.clampedAdding(.max))
        if case .hold = placed {} else { Issue.record("\(placed)") }
        let hold = Hold(key: "k", resource: "r", units: .max, state: .held, expiresAt: Timestamp(milliseconds: 0))
        let (_, released) = HoldRule.release(expired: [hold], of: crowded, now: now)
        #expect(released.count == 1)
        let (_, _, settled) = HoldRule.settle(
            hold,
            confirm: true,
            on: ResourceState(name: "r", capacity: 1, held: .min, confirmed: .max),
            now: now
        )
        #expect(settled?.held == .min)
        // A wallet whose pending and posted debits sum past Int64: the rule compares in 128 bits.
        var wallet = Account(id: "w", ledger: 1, code: 1, flags: .debitsMustNotExceedCredits)
        wallet.debitsPending = .max
        wallet.debitsPosted = 1
        wallet.creditsPosted = .max
        let bank = Account(id: "b", ledger: 1, code: 1)
        var engine = LedgerEngine(accounts: ["w": wallet, "b": bank], transfers: [:], failed: [])
        #expect(engine.apply([Transfer(id: "t", debit: "w", credit: "b", amount: 1)], now: now).results == [.overflowsBalance])
        // An expired pending whose account was built with pending debits below its amount.
        var pending = Transfer(id: "p", debit: "w", credit: "b", amount: .max, flags: .pending, timeoutMilliseconds: 1)
        pending.amount = .max
        var low = Account(id: "w", ledger: 1, code: 1)
        low.debitsPending = .min
        var expiring = LedgerEngine(
            accounts: ["w": low, "b": bank],
            transfers: [
                "p": StoredTransfer(
                    transfer: pending,
                    state: .pending,
                    createdAt: Timestamp(milliseconds: 0),
                    expiresAt: Timestamp(milliseconds: 1)
                )
            ],
            failed: []
        )
        let (results, changes) = expiring.apply([], now: now, expired: [expiring.transfers["p"]!])
        #expect(results.isEmpty)
        #expect(changes.accounts["w"]?.debitsPending == .min)
    }
}
