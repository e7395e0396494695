import Foundation
import Testing
import Unrace
import UnraceSQL
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
