import Testing
import UnraceCore

/// The ledger's rules alone: a snapshot in, results and changes out; no store.
@Suite("Ledger engine")
struct LedgerEngineTests {
    static let now = Timestamp(milliseconds: 100_000)

    /// An engine over a wallet that may not go below zero, funded with `funds`, and a bank account.
    static func engine(funds: Int64 = 100) -> LedgerEngine {
        var wallet = Account(id: "wallet", ledger: 1, code: 1, flags: .debitsMustNotExceedCredits)
        wallet.creditsPosted = funds
        let bank = Account(id: "bank", ledger: 1, code: 1)
        return LedgerEngine(accounts: ["wallet": wallet, "bank": bank], transfers: [:], failed: [])
    }

    @Test("a posted transfer moves both balances and is recorded once; its repeat answers exists and changes nothing")
    func postedAndRepeated() {
        var engine = Self.engine()
        let pay = Transfer(id: "t1", debit: "wallet", credit: "bank", amount: 30)
        let (results, changes) = engine.apply([pay], now: Self.now)
        #expect(results == [.created])
        #expect(changes.accounts["wallet"]?.balance == 70)
        #expect(changes.accounts["bank"]?.balance == 30)
        #expect(changes.created.map(\.transfer.id) == ["t1"])
        let (again, noChanges) = engine.apply([pay], now: Self.now)
        #expect(again == [.exists])
        #expect(noChanges.accounts.isEmpty && noChanges.created.isEmpty && noChanges.updated.isEmpty && noChanges.failures.isEmpty)
        var other = pay
        other.amount = 31
        #expect(engine.apply([other], now: Self.now).results == [.existsWithDifferent(field: "amount")])
    }

    @Test("a debit that would both pass the wallet's credits and overflow reports overflows_balance, as TransferResult documents")
    func overflowBeforeExceeds() {
        var engine = Self.engine(funds: 10)
        engine.accounts["wallet"]?.debitsPosted = 5
        let (results, _) = engine.apply([Transfer(id: "t1", debit: "wallet", credit: "bank", amount: .max)], now: Self.now)
        #expect(results == [.overflowsBalance])
    }

    @Test("a transfer past the wallet's credits fails, is remembered as failed, and its retry stays failed")
    func failureIsRemembered() {
        var engine = Self.engine(funds: 10)
        let (results, changes) = engine.apply([Transfer(id: "t1", debit: "wallet", credit: "bank", amount: 11)], now: Self.now)
        #expect(results == [.exceedsCredits])
        #expect(changes.failures == ["t1": "exceeds_credits"])
        #expect(changes.accounts.isEmpty)
        // Funded since, the same id still does not run.
        engine.accounts["wallet"]?.creditsPosted = 1_000
        #expect(
            engine.apply([Transfer(id: "t1", debit: "wallet", credit: "bank", amount: 11)], now: Self.now).results == [.idAlreadyFailed]
        )
    }

    @Test("a linked chain succeeds or fails whole: one failure fails the rest with linked_event_failed and writes nothing")
    func linkedChain() {
        var engine = Self.engine(funds: 50)
        let chain = [
            Transfer(id: "a", debit: "wallet", credit: "bank", amount: 40, flags: .linked),
            Transfer(id: "b", debit: "wallet", credit: "bank", amount: 20),
        ]
        let (results, changes) = engine.apply(chain, now: Self.now)
        #expect(results == [.linkedEventFailed, .exceedsCredits])
        #expect(changes.accounts.isEmpty && changes.created.isEmpty)
        #expect(engine.accounts["wallet"]?.balance == 50)
        #expect(
            engine.apply([Transfer(id: "c", debit: "wallet", credit: "bank", amount: 5, flags: .linked)], now: Self.now).results
                == [.linkedEventChainOpen]
        )
    }

    @Test("a pending transfer reserves its amount; a post takes part of it, a void none, and neither runs twice")
    func pendingPostAndVoid() {
        var engine = Self.engine(funds: 100)
        let hold = Transfer(id: "p", debit: "wallet", credit: "bank", amount: 60, flags: .pending, timeoutMilliseconds: 10_000)
        #expect(engine.apply([hold], now: Self.now).results == [.created])
        #expect(engine.accounts["wallet"]?.debitsPending == 60)
        // The reservation counts against the wallet's credits.
        #expect(engine.apply([Transfer(id: "x", debit: "wallet", credit: "bank", amount: 50)], now: Self.now).results == [.exceedsCredits])
        let post = Transfer(id: "post", debit: "wallet", credit: "bank", amount: 45, flags: .postPending, pendingID: "p")
        let (posted, changes) = engine.apply([post], now: Self.now)
        #expect(posted == [.created])
        #expect(changes.updated["p"]?.state == .pendingPosted)
        #expect(engine.accounts["wallet"].map { ($0.debitsPending, $0.balance) } ?? (-1, -1) == (0, 55))
        let void = Transfer(id: "void", debit: "wallet", credit: "bank", amount: 0, flags: .voidPending, pendingID: "p")
        #expect(engine.apply([void], now: Self.now).results == [.pendingTransferAlreadyPosted])
        // The post repeated: as sent, or asking for the pending's whole amount (0), which is
        // not what it moved.
        #expect(engine.apply([post], now: Self.now).results == [.exists])
        var postAll = post
        postAll.amount = 0
        #expect(engine.apply([postAll], now: Self.now).results == [.existsWithDifferent(field: "amount")])
        var postAgain = post
        postAgain.id = "post-again"
        #expect(engine.apply([postAgain], now: Self.now).results == [.pendingTransferAlreadyPosted])
        let more = Transfer(id: "p2", debit: "wallet", credit: "bank", amount: 10, flags: .pending)
        _ = engine.apply([more], now: Self.now)
        let tooMuch = Transfer(id: "post2", debit: "wallet", credit: "bank", amount: 11, flags: .postPending, pendingID: "p2")
        #expect(engine.apply([tooMuch], now: Self.now).results == [.exceedsPendingTransferAmount])
        // A void gives the whole reservation back and moves nothing; it cannot be posted after.
        let voidMore = Transfer(id: "void2", debit: "wallet", credit: "bank", amount: 0, flags: .voidPending, pendingID: "p2")
        let (voided, voidChanges) = engine.apply([voidMore], now: Self.now)
        #expect(voided == [.created])
        #expect(voidChanges.updated["p2"]?.state == .pendingVoided)
        #expect(engine.accounts["wallet"].map { ($0.debitsPending, $0.balance) } ?? (-1, -1) == (0, 55))
        // A whole post (0) repeated as 0 or as the amount it moved is the same post.
        let p3 = Transfer(id: "p3", debit: "wallet", credit: "bank", amount: 7, flags: .pending)
        let postWhole = Transfer(id: "post-whole", debit: "wallet", credit: "bank", amount: 0, flags: .postPending, pendingID: "p3")
        #expect(engine.apply([p3, postWhole], now: Self.now).results == [.created, .created])
        var postSeven = postWhole
        postSeven.amount = 7
        #expect(engine.apply([postWhole], now: Self.now).results == [.exists])
        #expect(engine.apply([postSeven], now: Self.now).results == [.exists])
        let postVoided = Transfer(id: "post3", debit: "wallet", credit: "bank", amount: 0, flags: .postPending, pendingID: "p2")
        #expect(engine.apply([postVoided], now: Self.now).results == [.pendingTransferAlreadyVoided])
    }

    @Test("an expired pending transfer is released before the batch, so its amount counts for nothing and it cannot be posted")
    func expiredPending() {
        var engine = Self.engine(funds: 100)
        let hold = Transfer(id: "p", debit: "wallet", credit: "bank", amount: 80, flags: .pending, timeoutMilliseconds: 1_000)
        _ = engine.apply([hold], now: Self.now)
        let later = Self.now + .seconds(1)  // the timeout is reached at exactly this instant
        let expired = engine.transfers["p"]!
        let (results, changes) = engine.apply(
            [Transfer(id: "t", debit: "wallet", credit: "bank", amount: 90)],
            now: later,
            expired: [expired]
        )
        #expect(results == [.created])
        #expect(changes.updated["p"]?.state == .pendingExpired)
        let post = Transfer(id: "post", debit: "wallet", credit: "bank", amount: 0, flags: .postPending, pendingID: "p")
        #expect(engine.apply([post], now: later).results == [.pendingTransferExpired])
    }

    @Test("missing accounts, other ledgers and closed accounts are refused before anything moves")
    func refusals() {
        var engine = Self.engine()
        engine.accounts["euro"] = Account(id: "euro", ledger: 2, code: 1)
        engine.accounts["shut"] = Account(id: "shut", ledger: 1, code: 1, flags: .closed)
        #expect(
            engine.apply([Transfer(id: "1", debit: "nobody", credit: "bank", amount: 1)], now: Self.now).results == [.debitAccountNotFound]
        )
        #expect(
            engine.apply([Transfer(id: "2", debit: "bank", credit: "nobody", amount: 1)], now: Self.now).results == [.creditAccountNotFound]
        )
        #expect(
            engine.apply([Transfer(id: "3", debit: "bank", credit: "euro", amount: 1)], now: Self.now).results == [
                .accountsMustHaveTheSameLedger
            ]
        )
        #expect(
            engine.apply([Transfer(id: "4", debit: "bank", credit: "wallet", amount: 1, ledger: 2)], now: Self.now).results
                == [.transferMustHaveTheSameLedgerAsAccounts]
        )
        #expect(
            engine.apply([Transfer(id: "5", debit: "bank", credit: "shut", amount: 1)], now: Self.now).results == [.creditAccountClosed]
        )
        #expect(engine.accounts["bank"]?.balance == 0)
    }

    @Test("a balance never overflows: the transfer that would is refused")
    func overflow() {
        var engine = Self.engine()
        engine.accounts["bank"]?.creditsPosted = .max - 5
        #expect(
            engine.apply([Transfer(id: "big", debit: "wallet", credit: "bank", amount: 6)], now: Self.now).results == [.overflowsBalance]
        )
        #expect(engine.apply([Transfer(id: "ok", debit: "wallet", credit: "bank", amount: 5)], now: Self.now).results == [.created])
    }

    @Test("a batch's snapshot names each account and transfer once, sorted, pending ids included")
    func snapshotIDs() {
        let batch = [
            Transfer(id: "t2", debit: "b", credit: "a", amount: 1),
            Transfer(id: "t1", debit: "a", credit: "c", amount: 0, flags: .postPending, pendingID: "p"),
        ]
        let ids = LedgerEngine.snapshotIDs(of: batch)
        #expect(ids.accounts == ["a", "b", "c"])
        #expect(ids.transfers == ["p", "t1", "t2"])
    }

    @Test(
        "a transfer is refused before anything is stored when its shape is wrong",
        arguments: [
            ("same account", Transfer(id: "t", debit: "a", credit: "a", amount: 1)),
            ("two kinds", Transfer(id: "t", debit: "a", credit: "b", amount: 1, flags: [.pending, .voidPending], pendingID: "p")),
            ("unknown flag", Transfer(id: "t", debit: "a", credit: "b", amount: 1, flags: Transfer.Flags(rawValue: 1 << 9))),
            ("post without pending id", Transfer(id: "t", debit: "a", credit: "b", amount: 1, flags: .postPending)),
            ("pending id on a plain transfer", Transfer(id: "t", debit: "a", credit: "b", amount: 1, pendingID: "p")),
            ("zero amount", Transfer(id: "t", debit: "a", credit: "b", amount: 0)),
            ("ledger 0", Transfer(id: "t", debit: "a", credit: "b", amount: 1, ledger: 0)),
            ("timeout on a posted transfer", Transfer(id: "t", debit: "a", credit: "b", amount: 1, timeoutMilliseconds: 5)),
            (
                "timeout past 366 days",
                Transfer(
                    id: "t",
                    debit: "a",
                    credit: "b",
                    amount: 1,
                    flags: .pending,
                    timeoutMilliseconds: Transfer.timeoutMillisecondsMaximum + 1
                )
            ),
            ("NUL in an id", Transfer(id: "t\u{0}", debit: "a", credit: "b", amount: 1)),
        ]
    )
    func badTransfers(_ label: String, _ transfer: Transfer) {
        #expect(throws: UnraceError.self, "\(label)") { try transfer.validated() }
    }

    @Test("a valid transfer comes back with its ids in NFC; a post may carry amount 0 (the whole pending amount)")
    func goodTransfers() throws {
        let post = try Transfer(id: "caf\u{65}\u{301}", debit: "a", credit: "b", amount: 0, flags: .postPending, pendingID: "p").validated()
        #expect(post.id == "caf\u{E9}" && Array(post.id.utf8) == Array("caf\u{E9}".utf8))
        #expect(throws: Never.self) {
            try Transfer(
                id: "t",
                debit: "a",
                credit: "b",
                amount: 1,
                flags: .pending,
                timeoutMilliseconds: Transfer.timeoutMillisecondsMaximum
            ).validate()
        }
    }

    @Test("an account is created with ledger 1 or more, known flags and zero balances only")
    func accounts() throws {
        #expect(throws: Never.self) { try Account(id: "a", ledger: 1, code: 1, flags: .closed).validated() }
        #expect(throws: UnraceError.self) { try Account(id: "a", ledger: 0, code: 1).validated() }
        #expect(throws: UnraceError.self) { try Account(id: "a", ledger: 1, code: 1, flags: Account.Flags(rawValue: 1 << 7)).validated() }
        var funded = Account(id: "a", ledger: 1, code: 1)
        funded.creditsPosted = 1
        #expect(throws: UnraceError.self) { try funded.validated() }
        #expect(
            AccountResult.compare(Account(id: "a", ledger: 1, code: 2), Account(id: "a", ledger: 1, code: 1))
                == .existsWithDifferent(field: "code")
        )
        #expect(AccountResult.compare(Account(id: "a", ledger: 1, code: 1), Account(id: "a", ledger: 1, code: 1)) == .exists)
    }
}
