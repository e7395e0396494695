import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite
import UnraceSimulation

/// The ledger: double entry, idempotent transfer ids, balance rules inside the write.
@Suite("Ledger")
struct LedgerTests {
    static func wallets<S: Store>(_ ledger: Ledger<S>, prefix: String, count: Int, funding: Int64) async throws -> [String] {
        let ids = (0..<count).map { "\(prefix)-w\($0)" }
        let equity = "\(prefix)-equity"
        _ = try await ledger.createAccounts(
            [Account(id: equity, ledger: 1, code: 1)] + ids.map { Account(id: $0, ledger: 1, code: 2, flags: .debitsMustNotExceedCredits) }
        )
        let funding = ids.map { Transfer(id: "\(prefix)-fund-\($0)", debit: equity, credit: $0, amount: funding) }
        #expect(try await ledger.submit(funding).allSatisfy { $0 == .created })
        return ids
    }

    @Test("the seed's withdrawals race on a real ledger: one is refused, the other lands", arguments: sqlBackends)
    func seedWithdrawals(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.seedWithdrawals(store) }
    }

    static func seedWithdrawals<S: SQLStore>(_ store: S) async throws {
        let ledger = try Ledger(store: store)
        let prefix = uniqueName("seed")
        let alice = try await wallets(ledger, prefix: prefix, count: 1, funding: 100)[0]
        _ = try await ledger.createAccounts([Account(id: "\(prefix)-shop", ledger: 1, code: 3)])
        let start = Barrier(parties: 2)
        let results = try await withThrowingTaskGroup(of: TransferResult.self) { group in
            for (index, amount) in [Int64(40), 80].enumerated() {
                group.addTask {
                    await start.arriveAndWait()
                    return try await ledger.submit([
                        Transfer(id: "\(prefix)-t\(index)", debit: alice, credit: "\(prefix)-shop", amount: amount)
                    ])[0]
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.filter { $0 == .created }.count == 1)
        #expect(results.contains(.exceedsCredits))
        let balance = try await ledger.lookupAccounts([alice])[0].balance
        #expect(balance == 60 || balance == 20)
        #expect(try await ledger.totals().isBalanced)
    }

    @Test(
        "32 tasks, 1,000 random transfers among 10 accounts, each sent twice at once: applied once, rules hold, money conserved",
        arguments: sqlBackends
    )
    func randomTransfers(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.randomTransfers(store) }
    }

    static func randomTransfers<S: SQLStore>(_ store: S) async throws {
        let ledger = try Ledger(store: store)
        let prefix = uniqueName("rand")
        let accounts = try await wallets(ledger, prefix: prefix, count: 10, funding: 1_000)
        let transfers = LedgerWorkload.transfers(count: 1_000, accounts: accounts, seed: 21, prefix: prefix)
        let submissions = transfers.flatMap { [$0, $0] }  // every transfer twice
        let results = try await withThrowingTaskGroup(of: [(String, TransferResult)].self) { group in
            for lane in 0..<32 {
                group.addTask {
                    var results: [(String, TransferResult)] = []
                    for index in stride(from: lane, to: submissions.count, by: 32) {
                        results.append((submissions[index].id, try await ledger.submit([submissions[index]])[0]))
                    }
                    return results
                }
            }
            return try await group.reduce(into: [String: [TransferResult]]()) { all, part in
                for (id, result) in part { all[id, default: []].append(result) }
            }
        }
        let violations = try await LedgerWorkload.violations(results: results, transfers: transfers, ledger: ledger, accounts: accounts)
        #expect(violations == [], "\(violations.prefix(5))")
        #expect(try await LedgerWorkload.logViolations(store: store, ledger: ledger, accounts: accounts, prefix: prefix) == [])
        #expect(results.values.contains { $0.contains(.exceedsCredits) }, "the workload does hit the balance rule")
    }

    @Test("4 OS processes submit the same 1,000 transfers: applied once, rules hold, money conserved", arguments: sqlBackends)
    func fourProcesses(backend: SQLBackend) async throws {
        try await withStore(backend) { store, location in try await Self.fourProcesses(store, location: location) }
    }

    static func fourProcesses<S: SQLStore>(_ store: S, location: String) async throws {
        let ledger = try Ledger(store: store)
        let prefix = uniqueName("proc")
        let accounts = try await wallets(ledger, prefix: prefix, count: 10, funding: 1_000)
        let children = try (0..<4).map { lane in
            try ChildProcess([
                "worker", "ledger-transfers", "--database", location, "--prefix", prefix, "--count", "1000", "--seed", "21", "--lane",
                "\(lane)",
            ])
        }
        for child in children { #expect(await child.exitStatus() == 0, "\(child.printed)") }
        let transfers = LedgerWorkload.transfers(count: 1_000, accounts: accounts, seed: 21, prefix: prefix)
        // Submitting each once more from here shows what every process saw: exists, or the same failure.
        var results: [String: [TransferResult]] = [:]
        for transfer in transfers { results[transfer.id] = try await ledger.submit([transfer]) }
        for (id, outcome) in results {
            #expect(outcome == [.exists] || outcome == [.idAlreadyFailed], "\(id): \(outcome)")
        }
        #expect(try await LedgerWorkload.balanceViolations(ledger: ledger, accounts: accounts) == [])
        #expect(try await LedgerWorkload.logViolations(store: store, ledger: ledger, accounts: accounts, prefix: prefix) == [])
    }

    @Test("pending, post, void, expiry, linked chains, exists and failed ids", arguments: sqlBackends)
    func semantics(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.semantics(store) }
    }

    static func semantics<S: SQLStore>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = LedgerConfiguration()
        configuration.clock = clock
        let ledger = try Ledger(store: store, configuration: configuration)
        let p = uniqueName("sem")
        let (a, b) = try await { () async throws -> (String, String) in
            let ids = try await wallets(ledger, prefix: p, count: 2, funding: 100)
            return (ids[0], ids[1])
        }()
        // Pending holds the amount; post moves it.
        #expect(try await ledger.submit([Transfer(id: "\(p)-h1", debit: a, credit: b, amount: 30, flags: .pending)]) == [.created])
        var account = try await ledger.lookupAccounts([a])[0]
        #expect(account.debitsPending == 30 && account.debitsPosted == 0)
        #expect(try await ledger.submit([Transfer(id: "\(p)-over", debit: a, credit: b, amount: 71)]) == [.exceedsCredits])
        #expect(try await ledger.submit([Transfer(id: "\(p)-over", debit: a, credit: b, amount: 1)]) == [.idAlreadyFailed])
        #expect(
            try await ledger.submit([Transfer(id: "\(p)-p1", debit: a, credit: b, amount: 0, flags: .postPending, pendingID: "\(p)-h1")])
                == [.created]
        )
        #expect(
            try await ledger.submit([Transfer(id: "\(p)-p2", debit: a, credit: b, amount: 0, flags: .voidPending, pendingID: "\(p)-h1")])
                == [.pendingTransferAlreadyPosted]
        )
        account = try await ledger.lookupAccounts([a])[0]
        #expect(account.debitsPending == 0 && account.debitsPosted == 30)
        // A partial post repeated as "the whole amount" (0) is not the post that was made.
        let partial = Transfer(id: "\(p)-pp", debit: a, credit: b, amount: 5, flags: .postPending, pendingID: "\(p)-h3")
        var whole = partial
        whole.amount = 0
        #expect(try await ledger.submit([Transfer(id: "\(p)-h3", debit: a, credit: b, amount: 20, flags: .pending)]) == [.created])
        #expect(try await ledger.submit([partial]) == [.created])
        #expect(try await ledger.submit([whole]) == [.existsWithDifferent(field: "amount")])
        #expect(try await ledger.submit([partial]) == [.exists])
        account = try await ledger.lookupAccounts([a])[0]
        #expect(account.debitsPending == 0 && account.debitsPosted == 35)
        #expect(try await ledger.submit([Transfer(id: "\(p)-back", debit: b, credit: a, amount: 5)]) == [.created])
        // A pending transfer past its timeout expires and gives its amount back.
        #expect(
            try await ledger.submit([Transfer(id: "\(p)-h2", debit: a, credit: b, amount: 50, flags: .pending, timeoutMilliseconds: 1_000)])
                == [.created]
        )
        clock.advance(by: .seconds(2))
        #expect(
            try await ledger.submit([Transfer(id: "\(p)-p3", debit: a, credit: b, amount: 0, flags: .postPending, pendingID: "\(p)-h2")])
                == [.pendingTransferExpired]
        )
        account = try await ledger.lookupAccounts([a])[0]
        #expect(account.debitsPending == 0 && account.balance == 70)
        // A linked chain fails as a unit.
        let chain = try await ledger.submit([
            Transfer(id: "\(p)-l1", debit: a, credit: b, amount: 10, flags: .linked),
            Transfer(id: "\(p)-l2", debit: b, credit: a, amount: 1_000),
        ])
        #expect(chain == [.linkedEventFailed, .exceedsCredits])
        #expect(try await ledger.lookupAccounts([a])[0].balance == 70, "the chain's first transfer rolled back")
        // Exists and exists-with-different.
        #expect(try await ledger.submit([Transfer(id: "\(p)-h1", debit: a, credit: b, amount: 30, flags: .pending)]) == [.exists])
        #expect(
            try await ledger.submit([Transfer(id: "\(p)-h1", debit: a, credit: b, amount: 31, flags: .pending)])
                == [.existsWithDifferent(field: "amount")]
        )
        #expect(try await ledger.submit([Transfer(id: "\(p)-x", debit: a, credit: "\(p)-nobody", amount: 1)]) == [.creditAccountNotFound])
        #expect(try await ledger.totals().isBalanced)
    }

    @Test("malformed transfers are refused before anything is written")
    func badInput() async throws {
        let store = MemoryStore()
        let ledger = try Ledger(store: store)
        let ids = try await Self.wallets(ledger, prefix: "bad", count: 2, funding: 10)
        let before = try await ledger.totals()
        let bad: [Transfer] = [
            Transfer(id: "t", debit: ids[0], credit: ids[1], amount: 0),
            Transfer(id: "t", debit: ids[0], credit: ids[1], amount: -5),
            Transfer(id: "t", debit: ids[0], credit: ids[0], amount: 5),
            Transfer(id: "", debit: ids[0], credit: ids[1], amount: 5),
            Transfer(id: String(repeating: "x", count: 256), debit: ids[0], credit: ids[1], amount: 5),
            Transfer(id: "t", debit: ids[0], credit: ids[1], amount: 5, flags: [.pending, .postPending], pendingID: "p"),
            Transfer(id: "t", debit: ids[0], credit: ids[1], amount: 5, flags: .linked),
        ]
        for transfer in bad {
            let error = await #expect(throws: UnraceError.self) {
                try await ledger.submit([Transfer(id: "ok", debit: ids[0], credit: ids[1], amount: 1), transfer])
            }
            #expect(error?.code == .invalidArgument)
        }
        #expect(try await ledger.totals() == before, "nothing was written, not even the valid transfer")
        #expect(try await ledger.submit([Transfer(id: "big", debit: ids[1], credit: ids[0], amount: 11)]) == [.exceedsCredits])
        let equity = "bad-equity"
        #expect(try await ledger.submit([Transfer(id: "ovf", debit: equity, credit: ids[0], amount: .max)]) == [.overflowsBalance])
    }
}

extension LedgerTests {
    @Test("one caller's bad pending id never fails another caller's valid transfer", arguments: sqlBackends)
    func badPendingIDAlone(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.badPendingIDAlone(store) }
    }

    static func badPendingIDAlone<S: SQLStore>(_ store: S) async throws {
        let prefix = uniqueName("batch")
        let ledger = try Ledger(store: store)
        _ = try await ledger.createAccounts([
            Account(id: "\(prefix)-a", ledger: 1, code: 1), Account(id: "\(prefix)-b", ledger: 1, code: 1),
        ])
        let start = Barrier(parties: 2)
        let bad = Task {
            await start.arriveAndWait()
            return try await ledger.submit([
                Transfer(
                    id: "\(prefix)-void",
                    debit: "\(prefix)-a",
                    credit: "\(prefix)-b",
                    amount: 0,
                    flags: .voidPending,
                    pendingID: "p\u{0}x"
                )
            ])
        }
        let good = Task {
            await start.arriveAndWait()
            return try await ledger.submit([Transfer(id: "\(prefix)-t", debit: "\(prefix)-a", credit: "\(prefix)-b", amount: 5)])
        }
        let badError = await #expect(throws: UnraceError.self) { try await bad.value }
        #expect(badError?.code == .invalidArgument)
        #expect(try await good.value == [.created])
    }

    @Test("totals past Int64 are exact, and later calls still work", arguments: storeBackends)
    func ledgerTotals(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.ledgerTotals(store) }
    }

    static func ledgerTotals<S: Store>(_ store: S) async throws {
        let prefix = uniqueName("big")
        let ledger = try Ledger(store: store)
        _ = try await ledger.createAccounts(["a", "b", "c", "d"].map { Account(id: "\(prefix)-\($0)", ledger: 1, code: 1) })
        #expect(
            try await ledger.submit([Transfer(id: "\(prefix)-1", debit: "\(prefix)-a", credit: "\(prefix)-b", amount: .max)]) == [.created]
        )
        #expect(
            try await ledger.submit([Transfer(id: "\(prefix)-2", debit: "\(prefix)-c", credit: "\(prefix)-d", amount: 1)]) == [.created]
        )
        let totals = try await ledger.totals()
        #expect(totals.isBalanced)
        #expect(totals.debitsPosted >= Int128(Int64.max) + 1)
        #expect(
            try await ledger.submit([Transfer(id: "\(prefix)-3", debit: "\(prefix)-a", credit: "\(prefix)-b", amount: 1)]) == [
                .overflowsBalance
            ]
        )
        #expect(try await ledger.totals().isBalanced, "totals keep working")
    }

    @Test("an expired pending never counts against a balance, and the sweeper voids it", arguments: storeBackends)
    func expiredPendings(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.expiredPendings(store) }
    }

    static func expiredPendings<S: Store>(_ store: S) async throws {
        let prefix = uniqueName("pend")
        let clock = ManualWallClock()
        var configuration = LedgerConfiguration()
        configuration.clock = clock
        let ledger = try Ledger(store: store, configuration: configuration)
        let (equity, wallet, shop) = ("\(prefix)-equity", "\(prefix)-wallet", "\(prefix)-shop")
        let (other, otherShop) = ("\(prefix)-other", "\(prefix)-other-shop")
        _ = try await ledger.createAccounts([
            Account(id: equity, ledger: 1, code: 1), Account(id: wallet, ledger: 1, code: 2, flags: .debitsMustNotExceedCredits),
            Account(id: shop, ledger: 1, code: 3), Account(id: other, ledger: 1, code: 2, flags: .debitsMustNotExceedCredits),
            Account(id: otherShop, ledger: 1, code: 3),
        ])
        _ = try await ledger.submit([
            Transfer(id: "\(prefix)-fund", debit: equity, credit: wallet, amount: 100),
            Transfer(id: "\(prefix)-fund2", debit: equity, credit: other, amount: 100),
        ])
        _ = try await ledger.submit([
            Transfer(id: "\(prefix)-hold", debit: wallet, credit: shop, amount: 100, flags: .pending, timeoutMilliseconds: 1_000),
            Transfer(id: "\(prefix)-hold2", debit: other, credit: otherShop, amount: 100, flags: .pending, timeoutMilliseconds: 1_000),
        ])
        #expect(try await ledger.submit([Transfer(id: "\(prefix)-early", debit: wallet, credit: shop, amount: 50)]) == [.exceedsCredits])
        clock.advance(by: .seconds(2))
        #expect(try await ledger.submit([Transfer(id: "\(prefix)-late", debit: wallet, credit: shop, amount: 50)]) == [.created])
        #expect(try await ledger.lookupAccounts([wallet])[0].debitsPending == 0)
        // The other wallet's pending expired too; nothing touched it until the sweeper runs.
        #expect(try await ledger.lookupAccounts([other])[0].debitsPending == 100)
        #expect(try await ledger.voidExpiredPendingTransfers(limit: 100) >= 1)
        #expect(try await ledger.lookupAccounts([other])[0].debitsPending == 0)
        #expect(
            try await ledger.submit([
                Transfer(
                    id: "\(prefix)-post",
                    debit: other,
                    credit: otherShop,
                    amount: 0,
                    flags: .postPending,
                    pendingID: "\(prefix)-hold2"
                )
            ]) == [.pendingTransferExpired]
        )
        #expect(try await ledger.totals().isBalanced)
    }

    @Test("the sweeper, a Service in a ServiceGroup, voids expired pendings and stops on graceful shutdown", arguments: sqlBackends)
    func sweeperService(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.sweeperService(store) }
    }

    static func sweeperService<S: Store>(_ store: S) async throws {
        let prefix = uniqueName("sweep")
        let clock = ManualWallClock()
        var configuration = LedgerConfiguration()
        configuration.clock = clock
        let ledger = try Ledger(store: store, configuration: configuration)
        let (_, wallet, shop) = try await fundedWallet(ledger, prefix: prefix)
        _ = try await ledger.submit([
            Transfer(id: "\(prefix)-hold", debit: wallet, credit: shop, amount: 100, flags: .pending, timeoutMilliseconds: 1_000)
        ])
        clock.advance(by: .seconds(2))
        let group = ServiceGroup(
            services: [try PendingTransferSweeper(ledger: ledger, interval: .seconds(5))],
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let running = Task { try await group.run() }
        let released = try await within(.seconds(60), "the sweeper voiding the pending") {
            while try await ledger.lookupAccounts([wallet])[0].debitsPending != 0 { await Task.yield() }
            return true
        }
        #expect(released)
        await group.triggerGracefulShutdown()
        try await within(.seconds(60), "the service group stopping") { try await running.value }
        #expect(try await ledger.lookupAccounts([shop])[0].creditsPending == 0)
    }

    @Test("cancelling the caller whose group is running fails no other caller", arguments: sqlBackends)
    func ledgerGroupCancellation(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.ledgerGroupCancellation(store) }
    }

    static func ledgerGroupCancellation<S: Store>(_ base: S) async throws {
        let prefix = uniqueName("group")
        _ = try await Ledger(store: base).createAccounts([
            Account(id: "\(prefix)-a", ledger: 1, code: 1), Account(id: "\(prefix)-b", ledger: 1, code: 1),
        ])
        let gated = GatedStore(base: base, gatedStep: "submit")
        let ledger = try Ledger(store: gated)
        func transfer(_ id: String) -> Transfer { Transfer(id: "\(prefix)-\(id)", debit: "\(prefix)-a", credit: "\(prefix)-b", amount: 1) }
        // A's transfer starts a group, which stops at the gate; B and C queue for the next group.
        let a = Task { try await ledger.submit([transfer("a")]) }
        await gated.arrived.wait()
        let b = Task { try await ledger.submit([transfer("b")]) }
        let c = Task { try await ledger.submit([transfer("c")]) }
        await Task.yield()
        a.cancel()  // A's group is running: A still gets its group's result
        c.cancel()  // C may be queued (withdrawn, nothing applied) or already in B's group (applied)
        gated.gate.open()
        #expect(try await a.value == [.created], "A's transfer committed with its group; the cancelled call says so")
        #expect(try await b.value == [.created], "B was not cancelled and must not fail")
        let cResult = await c.result
        let lookup = try await Ledger(store: base).submit([transfer("c")])
        switch cResult {
        case .success(let results):
            #expect(results == [.created])
            #expect(lookup == [.exists])
        case .failure(let error):
            #expect(error is CancellationError)
            #expect(lookup == [.created], "a withdrawn submission applied nothing")
        }
    }
}
