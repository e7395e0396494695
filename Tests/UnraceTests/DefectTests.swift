import Foundation
import Logging
import ServiceLifecycle
import Testing
import Unrace
import UnracePostgres
import UnraceSQL
import UnraceSQLite

/// The defects an independent test suite and a review found, one test each, on SQLite and
/// PostgreSQL (and memory, where only the API is involved). Every one failed on 5ce274e.
@Suite("Defects found by review")
struct DefectTests {
    // MARK: 1. NUL and control characters in names

    @Test("1. a NUL in a name is refused with a typed error and nothing is written", arguments: sqlBackends)
    func nulNames(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.nulNames(store) }
    }

    static func nulNames<S: SQLStore>(_ store: S) async throws {
        let prefix = uniqueName("nul")
        let reservations = Reservations(store: store)
        try await reservations.createResource("\(prefix)-seat", capacity: 1)
        for buyer in ["alice", "bob"] {
            let error = await #expect(throws: UnraceError.self) {
                try await reservations.hold("\(prefix)-seat", key: "hold\u{0}\(buyer)", timeToLive: .seconds(60))
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("control character U+0000") == true)
        }
        #expect(try await reservations.resource("\(prefix)-seat")?.available == 1, "neither hold was taken")

        let records = try Records(store: store, collection: "\(prefix)-docs")
        let createError = await #expect(throws: UnraceError.self) { try await records.create("id\u{0}two", "two") }
        #expect(createError?.code == .invalidArgument)
        #expect(try await records.create("id", "one") == nil, "'id' was never created by the refused call")
        #expect(try await records.read("id", as: String.self)?.value == "one")

        let counters = Counters(store: store)
        let counterError = await #expect(throws: UnraceError.self) { try await counters.create("\(prefix)\u{0}c", value: 1) }
        #expect(counterError?.code == .invalidArgument)

        let ledger = try Ledger(store: store)
        let accountError = await #expect(throws: UnraceError.self) {
            try await ledger.createAccounts([Account(id: "\(prefix)\u{0}wallet", ledger: 1, code: 1)])
        }
        #expect(accountError?.code == .invalidArgument)
        // The same rule at creation and at use: an id with a newline can be neither.
        let newlineError = await #expect(throws: UnraceError.self) {
            try await ledger.createAccounts([Account(id: "\(prefix)\nwallet", ledger: 1, code: 1)])
        }
        #expect(newlineError?.code == .invalidArgument)
        #expect(try await ledger.lookupAccounts(["\(prefix)"]).isEmpty)

        let eventError = #expect(throws: UnraceError.self) {
            try InboxEvent(id: "e\u{0}1", stream: "\(prefix)-s", sequence: 1, type: "T")
        }
        #expect(eventError?.code == .invalidEvent)
    }

    @Test("1. one caller's bad pending id never fails another caller's valid transfer", arguments: sqlBackends)
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

    // MARK: 2. Unicode normalisation

    @Test("2. keys equal as Swift strings (NFC and NFD) are one operation on every store", arguments: storeBackends)
    func nfcAndNFD(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.nfcAndNFD(store) }
    }

    static func nfcAndNFD<S: Store>(_ store: S) async throws {
        let composed = "order:caf\u{E9}"
        let decomposed = "order:cafe\u{301}"
        #expect(composed == decomposed, "Swift compares canonical equivalence")
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(3_600))
        let scope = try Scope(uniqueName("nfc"))
        let runs = Counter()
        let first = try await operations.perform(key: composed, scope: scope) { _ in runs.increment() }
        let second = try await operations.perform(key: decomposed, scope: scope) { _ in runs.increment() }
        #expect(!first.isReplay && second.isReplay)
        #expect(runs.value == 1)

        let counters = Counters(store: store)
        let name = uniqueName("stock")
        try await counters.create("\(name)-caf\u{E9}", value: 10)
        #expect(try await counters.adjust("\(name)-cafe\u{301}", by: -1) == .applied(value: 9), "one counter under both spellings")
    }

    @Test("2. a format character is refused and named as one", arguments: ["\u{200F}", "\u{200D}", "\u{FEFF}"])
    func formatCharacters(character: String) async throws {
        let error = #expect(throws: UnraceError.self) { try OperationKey("key\(character)x") }
        #expect(error?.code == .invalidKey)
        #expect(error?.message.contains("format character") == true)
        #expect(error?.message.contains("control character") == false)
    }

    // MARK: 3. Counter overflow

    @Test("3. a counter step past Int64's range is refused, and the counter still works", arguments: storeBackends)
    func counterOverflow(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.counterOverflow(store) }
    }

    static func counterOverflow<S: Store>(_ store: S) async throws {
        let counters = Counters(store: store)
        let low = uniqueName("low")
        try await counters.create(low, value: .min + 5, floor: .min)
        #expect(try await counters.adjust(low, by: -10) == .refused(current: .min + 5))
        #expect(try await counters.adjust(low, by: -5) == .applied(value: .min))
        #expect(try await counters.adjust(low, by: 1) == .applied(value: .min + 1))
        let high = uniqueName("high")
        try await counters.create(high, value: .max - 5)
        #expect(try await counters.adjust(high, by: 10) == .refused(current: .max - 5))
        #expect(try await counters.counter(high)?.value == .max - 5)
    }

    // MARK: 4. Quota windows

    @Test(
        "4. quotas: over-limit refused in every window, windows only move forward, denials report the current window",
        arguments: storeBackends
    )
    func quotaWindows(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.quotaWindows(store) }
    }

    static func quotaWindows<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock(start: Timestamp(milliseconds: 1_700_000_040_000))  // 40 s into a minute
        let counters = Counters(store: store, clock: clock)
        let name = uniqueName("api")
        #expect(try await counters.consume(name, units: 5, limit: 3, window: .seconds(60)) == .denied(used: 0), "5 of 3 in a new window")
        #expect(try await counters.consume(name, units: 3, limit: 3, window: .seconds(60)) == .granted(used: 3))
        // A caller whose clock lags a whole window behind counts against the newer window.
        clock.advance(by: .seconds(60))
        #expect(try await counters.consume(name, units: 1, limit: 3, window: .seconds(60)) == .granted(used: 1))
        let lagging = Counters(store: store, clock: ManualWallClock(start: Timestamp(milliseconds: 1_700_000_040_000)))
        #expect(
            try await lagging.consume(name, units: 2, limit: 3, window: .seconds(60)) == .granted(used: 3),
            "not a reset of the old window"
        )
        #expect(try await lagging.consume(name, units: 1, limit: 3, window: .seconds(60)) == .denied(used: 3))
        // A denial in a new window reports that window's use, not the previous one's.
        clock.advance(by: .seconds(60))
        #expect(try await counters.consume(name, units: 4, limit: 3, window: .seconds(60)) == .denied(used: 0))
    }

    // MARK: 5. Ledger totals

    @Test("5. totals past Int64 are exact, and later calls still work", arguments: storeBackends)
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

    // MARK: 6. Expired pending transfers

    @Test("6. an expired pending never counts against a balance, and the sweeper voids it", arguments: storeBackends)
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

    @Test("6. the sweeper, a Service in a ServiceGroup, voids expired pendings and stops on graceful shutdown", arguments: sqlBackends)
    func sweeperService(backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.sweeperService(store) }
    }

    static func sweeperService<S: Store>(_ store: S) async throws {
        let prefix = uniqueName("sweep")
        let clock = ManualWallClock()
        var configuration = LedgerConfiguration()
        configuration.clock = clock
        let ledger = try Ledger(store: store, configuration: configuration)
        let (equity, wallet, shop) = ("\(prefix)-equity", "\(prefix)-wallet", "\(prefix)-shop")
        _ = try await ledger.createAccounts([
            Account(id: equity, ledger: 1, code: 1), Account(id: wallet, ledger: 1, code: 2, flags: .debitsMustNotExceedCredits),
            Account(id: shop, ledger: 1, code: 3),
        ])
        _ = try await ledger.submit([Transfer(id: "\(prefix)-fund", debit: equity, credit: wallet, amount: 100)])
        _ = try await ledger.submit([
            Transfer(id: "\(prefix)-hold", debit: wallet, credit: shop, amount: 100, flags: .pending, timeoutMilliseconds: 1_000)
        ])
        clock.advance(by: .seconds(2))
        let group = ServiceGroup(
            services: [try PendingTransferSweeper(ledger: ledger, interval: .seconds(5))],
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let running = Task { try await group.run() }
        let released = try await within(.seconds(30), "the sweeper voiding the pending") {
            while try await ledger.lookupAccounts([wallet])[0].debitsPending != 0 { await Task.yield() }
            return true
        }
        #expect(released)
        await group.triggerGracefulShutdown()
        try await within(.seconds(30), "the service group stopping") { try await running.value }
        #expect(try await ledger.lookupAccounts([shop])[0].creditsPending == 0)
    }

    // MARK: 7. Event id reused on another stream

    @Test("7. an event id reused on another stream is refused, and its handler never runs again", arguments: storeBackends)
    func eventIDReused(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.eventIDReused(store) }
    }

    static func eventIDReused<S: Store>(_ store: S) async throws {
        let prefix = uniqueName("inbox")
        let inbox = try Inbox(store: store)
        let runs = Counter()
        let first = try InboxEvent(id: "\(prefix)-e", stream: "\(prefix)-A", sequence: 1, type: "T")
        #expect(
            try await inbox.receive(first) { _, _ in
                runs.increment()
                return .applied
            } == .applied(drained: 0)
        )
        let reused = try InboxEvent(id: "\(prefix)-e", stream: "\(prefix)-B", sequence: 1, type: "T")
        let error = await #expect(throws: UnraceError.self) {
            try await inbox.receive(reused) { _, _ in
                runs.increment()
                return .applied
            }
        }
        #expect(error?.code == .eventIDReused)
        #expect(runs.value == 1)
        #expect(try await inbox.head(of: "\(prefix)-B") == 0)
        #expect(
            try await inbox.receive(first) { _, _ in
                runs.increment()
                return .applied
            } == .duplicate
        )
    }

    // MARK: 8. Cancellation on SQLite

    @Test("8. a cancelled perform rolls back and releases the writer (SQLite: another store on the file and the same store write at once)")
    func cancellationReleasesTheWriter() async throws {
        try await withStore(.sqlite) { store, path in try await Self.cancellationReleasesTheWriter(store, path: path) }
    }

    static func cancellationReleasesTheWriter<S: SQLStore>(_ store: S, path: String) async throws {
        do {
            let table = uniqueName("effects")
            try await createEffectsTable(store, table)
            let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
            let entered = Latch()
            let task = Task {
                try await operations.perform(key: "slow") { tx in
                    try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('slow', 'w', 0)")
                    entered.open()
                    try await Task.sleep(for: .seconds(3_600))  // suspended until cancelled
                    return 1
                }
            }
            await entered.wait()
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            var configuration = SQLiteStore.Configuration()
            configuration.busyTimeout = .milliseconds(200)  // a writer left open would fail this at once
            let other = try await SQLiteStore(path: path, configuration: configuration)
            _ = try await other.withTransaction { tx in
                try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('other', 'w', 0)")
            }
            #expect(try await operations.perform(key: "slow") { _ in 2 }.value == 2, "the key stayed free")
            #expect(try await countRows(store, table, id: "slow") == 0, "the cancelled body's write rolled back")
        }
    }

    @Test(
        "8. a cancelled perform on PostgreSQL rolls back and leaves the key free",
        .enabled(if: TestPostgres.required, "needs PostgreSQL")
    )
    func cancellationOnPostgres() async throws {
        try await withStore(.postgres) { store, _ in try await Self.cancellationOnPostgres(store) }
    }

    static func cancellationOnPostgres<S: SQLStore>(_ store: S) async throws {
        do {
            let table = uniqueName("effects")
            try await createEffectsTable(store, table)
            let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
            let scope = try Scope(uniqueName("cancel"))
            let entered = Latch()
            let task = Task {
                try await operations.perform(key: "slow", scope: scope) { tx in
                    try await tx.execute("INSERT INTO \(table) (id, worker, seq) VALUES ('slow', 'w', 0)")
                    entered.open()
                    try await Task.sleep(for: .seconds(3_600))
                    return 1
                }
            }
            await entered.wait()
            task.cancel()
            await #expect(throws: CancellationError.self) { try await task.value }
            #expect(try await operations.perform(key: "slow", scope: scope, whenInProgress: .failFast) { _ in 2 }.value == 2)
            #expect(try await countRows(store, table, id: "slow") == 0)
        }
    }

    @Test("8. a caller cancelled while its body runs commits nothing, even when the body never suspends", arguments: storeBackends)
    func cancelledBeforeCommit(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.cancelledBeforeCommit(store) }
    }

    static func cancelledBeforeCommit<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
        let scope = try Scope(uniqueName("cancel"))
        let runs = Counter()
        let started = Latch()
        let cancelled = Latch()
        let task = Task {
            try await operations.perform(key: "quick", scope: scope) { _ in
                started.open()
                await cancelled.wait()  // the caller is cancelled while the body runs; it returns normally
                runs.increment()
                return 1
            }
        }
        await started.wait()
        task.cancel()
        cancelled.open()
        await #expect(throws: CancellationError.self) { try await task.value }
        #expect(runs.value == 1)
        #expect(try await operations.status(of: "quick", scope: scope) == .notStarted, "nothing of the cancelled step committed")
    }

    // MARK: 9. Cancellation in the ledger's group

    @Test("9. cancelling the caller whose group is running fails no other caller", arguments: sqlBackends)
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

    // MARK: 10. Nested perform

    @Test("10. a perform inside a perform body fails at once with nested_step, on every store", arguments: storeBackends)
    func nestedPerform(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.nestedPerform(store) }
    }

    static func nestedPerform<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store, lease: .seconds(30), retention: .seconds(60))
        let scope = try Scope(uniqueName("nested"))
        let outcome = try await within(.seconds(20), "a nested perform") {
            try await operations.perform(key: "outer", scope: scope) { _ in
                do {
                    _ = try await operations.perform(key: "inner", scope: scope) { _ in 1 }
                    return "nested perform ran"
                } catch let error as UnraceError {
                    return error.code.rawValue
                }
            }
        }
        #expect(outcome.value == "nested_step")
        #expect(try await operations.status(of: "inner", scope: scope) == .notStarted)
    }

    // MARK: 11. From review

    @Test("11. purge deletes one scope's expired records only, including released and abandoned ones", arguments: storeBackends)
    func purgePerScope(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.purgePerScope(store) }
    }

    static func purgePerScope<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.lease = .seconds(10)
        configuration.retention = .seconds(60)
        let operations = try Operations(store: store, configuration: configuration)
        let (mine, theirs) = (try Scope(uniqueName("tenant-a")), try Scope(uniqueName("tenant-b")))
        for scope in [mine, theirs] { _ = try await operations.perform(key: "done", scope: scope) { _ in 1 } }
        guard case .acquired(let released) = try await operations.begin(key: "released", scope: mine),
            case .acquired = try await operations.begin(key: "abandoned", scope: mine)
        else {
            Issue.record("claims")
            return
        }
        try await operations.fail(released, reason: .retryable)
        clock.advance(by: .seconds(61))
        // Abandoned: its lease (10 s) plus the retention (60 s) has not passed yet.
        #expect(try await operations.purgeExpired(scope: mine, limit: 100) == 2)
        #expect(try await operations.status(of: "done", scope: theirs) != .notStarted, "another tenant's record is untouched")
        #expect(try await operations.status(of: "abandoned", scope: mine) != .notStarted)
        clock.advance(by: .seconds(10))
        #expect(try await operations.purgeExpired(scope: mine, limit: 100) == 1)
        #expect(try await operations.status(of: "abandoned", scope: mine) == .notStarted)
        #expect(try await operations.purgeExpired(scope: theirs, limit: 100) == 1)
    }

    @Test("11. a hold key already holding one resource is refused on another", arguments: storeBackends)
    func holdKeysAcrossResources(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.holdKeys(store) }
    }

    static func holdKeys<S: Store>(_ store: S) async throws {
        do {
            let prefix = uniqueName("seat")
            let reservations = Reservations(store: store)
            try await reservations.createResource("\(prefix)-A", capacity: 1)
            try await reservations.createResource("\(prefix)-B", capacity: 1)
            guard case .hold = try await reservations.hold("\(prefix)-A", key: "\(prefix)-K", timeToLive: .seconds(60)) else {
                Issue.record("hold on A")
                return
            }
            let error = await #expect(throws: UnraceError.self) {
                try await reservations.hold("\(prefix)-B", key: "\(prefix)-K", timeToLive: .seconds(60))
            }
            #expect(error?.code == .holdKeyReused)
            #expect(try await reservations.resource("\(prefix)-B")?.available == 1)
        }
    }

    @Test("11. placeholders are rewritten only outside comments, quoted and dollar-quoted text and jsonb operators")
    func placeholderRewriting() async throws {
        let cases: [(String, String)] = [
            ("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"),
            ("SELECT '?', ?", "SELECT '?', $1"),
            ("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"),
            ("SELECT E'\\'?', ?", "SELECT E'\\'?', $1"),
            ("SELECT $$ ? $$, ?", "SELECT $$ ? $$, $1"),
            ("SELECT $tag$ ? $tag$, ?", "SELECT $tag$ ? $tag$, $1"),
            ("SELECT /* ? /* ? */ ? */ ?", "SELECT /* ? /* ? */ ? */ $1"),
            ("SELECT \"a?\" FROM t WHERE x = ?", "SELECT \"a?\" FROM t WHERE x = $1"),
            (
                "SELECT doc ?| ARRAY['a'], doc ?& ARRAY['b'] FROM t WHERE id = ?",
                "SELECT doc ?| ARRAY['a'], doc ?& ARRAY['b'] FROM t WHERE id = $1"
            ),
            ("SELECT $1, doc ? 'k' FROM t", "SELECT $1, doc ? 'k' FROM t"),
            ("SELECT ?||'x'", "SELECT $1||'x'"),
        ]
        for (sql, expected) in cases {
            #expect(PostgresTransaction.numberPlaceholders(sql) == expected, "\(sql)")
        }
    }

    @Test("11. on a live PostgreSQL, `?` in comments and dollar quotes stays text", .enabled(if: TestPostgres.required, "needs PostgreSQL"))
    func placeholderRewritingLive() async throws {
        try await withStore(.postgres) { store, _ in
            let row = try await store.withTransaction { tx in
                try await tx.query("SELECT ? AS a /* not ? a placeholder */, '?' AS b, $q$?$q$ AS c, ? AS d", [1, 2])[0]
            }
            #expect(row["a"] == .integer(1) && row["b"] == .text("?") && row["c"] == .text("?") && row["d"] == .integer(2))
        }
    }

    @Test("11. every retry policy gets its own jitter seed")
    func jitterSeeds() {
        #expect(Set((0..<8).map { _ in RetryPolicy().seed }).count == 8)
    }
}
