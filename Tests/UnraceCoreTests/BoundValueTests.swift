import Testing
import UnraceCore

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
