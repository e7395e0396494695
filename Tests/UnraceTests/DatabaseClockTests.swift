import Foundation
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// On PostgreSQL, leases are decided on the database's clock: a machine whose clock runs ahead
/// cannot take over a live lease early, however far ahead it runs.
@Suite("Leases on the database clock")
struct DatabaseClockTests {
    /// A machine's real clock that runs `offset` ahead: real time, so PostgreSQL replaces it.
    struct SkewedSystemClock: WallClock {
        var offset: Duration
        func now() -> Timestamp {
            Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down)) + offset.wholeMilliseconds)
        }
        func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
        var isRealTime: Bool { true }
    }

    @Test(
        "a process whose clock runs 5 minutes ahead cannot take over a live 30 s lease on PostgreSQL; a client-clock lease lets it",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func skewedProcessCannotTakeOver() async throws {
        try await withStore(.postgres) { store, _ in try await Self.skewedProcess(store) }
    }

    static func skewedProcess<S: SQLStore>(_ store: S) async throws {
        let ahead = SkewedSystemClock(offset: .seconds(300))
        // Naive: a lock row whose expiry each machine computes and checks on its own clock.
        let locks = uniqueName("locks")
        _ = try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(locks) (id TEXT PRIMARY KEY, holder TEXT NOT NULL, until_ms BIGINT NOT NULL)")
        }
        func lock(_ holder: String, clock: any WallClock) async throws -> Bool {
            try await store.withTransaction { tx in
                let now = clock.now().milliseconds
                if let until = try await tx.query("SELECT until_ms FROM \(locks) WHERE id = 'job'").first?.optionalInt64("until_ms"),
                    until > now
                {
                    return false
                }
                try await tx.execute(
                    "INSERT INTO \(locks) (id, holder, until_ms) VALUES ('job', ?, ?) ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms",
                    [.text(holder), .integer(now + 30_000)]
                )
                return true
            }
        }
        #expect(try await lock("a", clock: SystemWallClock()))
        #expect(try await lock("b", clock: ahead), "the naive lease: the machine ahead takes a live lease over")

        // Guarded: the same two machines through Operations.
        let scope = try Scope(uniqueName("skew"))
        var onTime = OperationsConfiguration()
        onTime.lease = .seconds(30)
        onTime.holder = "machine-a"
        var skewed = onTime
        skewed.holder = "machine-b"
        skewed.clock = ahead
        let a = try Operations(store: store, configuration: onTime)
        let b = try Operations(store: store, configuration: skewed)
        guard case .acquired(let handle) = try await a.begin(key: "job", scope: scope) else {
            Issue.record("machine A must acquire the free key")
            return
        }
        guard case .inProgress(let holder, let until) = try await b.begin(key: "job", scope: scope) else {
            Issue.record("machine B, 5 minutes ahead, took over a live lease")
            return
        }
        #expect(holder == "machine-a")
        #expect(until == handle.leaseUntil)
        // The lease was set on the database's clock, which agrees with this machine's here.
        let local = SystemWallClock().now().milliseconds
        #expect(abs(handle.leaseUntil.milliseconds - 30_000 - local) < 60_000, "lease end from the database clock, not 5 minutes ahead")
        try await a.complete(handle, result: "done by A")
        guard case .completed(let done) = try await b.begin(key: "job", scope: scope) else {
            Issue.record("B must see the completed operation")
            return
        }
        #expect(try done.value(as: String.self) == "done by A")
    }

    struct Abandoned: Error {}

    /// What holds the key's row while a second claim waits on it: a perform's fresh claim, or a
    /// holder's checkpoint on its running record.
    enum RowHolder: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case freshClaim, runningRecord
        var testDescription: String { rawValue }
    }

    @Test(
        "a begin that waited past its lease on another step's hold of the key's row gets a whole lease from the end of its wait",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)"),
        arguments: RowHolder.allCases
    )
    func claimAfterLongWait(_ holder: RowHolder) async throws {
        try await withStore(.postgres) { store, _ in try await Self.claimAfterLongWait(store, holder) }
    }

    static func claimAfterLongWait<S: SQLStore>(_ store: S, _ holder: RowHolder) async throws {
        // The system clock: on PostgreSQL every lease is decided on the database's clock.
        let operations = try Operations(store: store, lease: .seconds(1), retention: .seconds(60))
        let (key, scope) = ("k", try Scope(uniqueName("wait")))
        let holding = Latch()
        let release = Latch()
        let backend = Mutex<Int64?>(nil)
        let hold: @Sendable (S.Transaction) async throws -> Void = { tx in
            let pid = try await backendPID(tx)
            backend.withLock { $0 = pid }
            holding.open()
            await release.wait()
            throw Abandoned()
        }
        // The row is held, uncommitted or locked, while the step's body runs; then it fails.
        let first: Task<Void, any Error>
        switch holder {
        case .freshClaim:
            first = Task {
                _ = try await operations.perform(key: key, scope: scope) { tx -> Int in
                    try await hold(tx)
                    return 0
                }
            }
        case .runningRecord:
            guard case .acquired(let handle) = try await operations.begin(key: key, scope: scope) else {
                Issue.record("no first claim")
                return
            }
            first = Task { _ = try await operations.checkpoint(handle, recoveryPoint: 1, hold) }
        }
        defer { release.open() }
        await holding.wait()
        let pid = try #require(backend.withLock { $0 })
        let second = Task { try await operations.begin(key: key, scope: scope) }
        // The begin waits on the row; its first statement read the time as it began.
        try await waitUntilBlocked(by: pid, on: store, "the begin waiting on the held row")
        // Longer than the lease passes while it waits (the time itself is what is tested).
        try await Task.sleep(for: .milliseconds(1_500))
        let released = try await databaseNow(store)
        release.open()
        await #expect(throws: Abandoned.self) { try await first.value }
        guard case .acquired(let handle) = try await second.value else {
            Issue.record("the waiting begin did not acquire the key its holder gave up")
            return
        }
        #expect(handle.token == FencingToken(holder == .freshClaim ? 1 : 2))
        // Decided after its wait, so after `released`: a whole lease from then.
        #expect(
            handle.leaseUntil.milliseconds >= released + 1_000,
            "lease until \(handle.leaseUntil.milliseconds), the row released at database time \(released)"
        )
    }

    @Test(
        "a claim template built by hand with the longest durations is reserved on every store, never an error or a trap",
        arguments: storeBackends
    )
    func longestTemplate(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.longestTemplate(store) }
    }

    static func longestTemplate<S: Store>(_ store: S) async throws {
        let template = ClaimTemplate(
            scope: try Scope(uniqueName("longest")),
            key: try OperationKey("k"),
            fingerprint: .none,
            holder: "h",
            lease: .seconds(Int64.max),
            retention: .seconds(UInt64.max)
        )
        let lock = try await store.step(StepInfo("longest", "k", clock: SystemWallClock())) { context in
            try await context.rows.lockOperation(template)
        }
        #expect(lock == .absent || lock == .reserved, "\(lock)")
    }

    @Test(
        "a post of a pending transfer that expired while the ledger waited for its accounts' locks is refused as expired",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func ledgerDecidesAfterItsWait() async throws {
        try await withStore(.postgres) { store, _ in try await Self.ledgerDecidesAfterItsWait(store) }
    }

    static func ledgerDecidesAfterItsWait<S: SQLStore>(_ store: S) async throws {
        // The system clock: on PostgreSQL the ledger decides on the database's clock.
        let ledger = try Ledger(store: store)
        let p = uniqueName("wait")
        let ids = try await LedgerTests.wallets(ledger, prefix: p, count: 2, funding: 100)
        let (a, b) = (ids[0], ids[1])
        // Long enough that the post's step starts (and reads the time) before it expires, even on
        // a loaded machine (the whole suite's set-up here once took over 5 s): the test is of the
        // wait, not of the set-up.
        let timeout: Int64 = 15_000
        let hold = Transfer(id: "\(p)-hold", debit: a, credit: b, amount: 30, flags: .pending, timeoutMilliseconds: timeout)
        let beforeHold = try await databaseNow(store)
        #expect(try await ledger.submit([hold]) == [.created])
        let holding = Latch()
        let release = Latch()
        let backend = Mutex<Int64?>(nil)
        // Another step holds the debit account's row while the post waits for it.
        let locker = Task {
            try await store.withTransaction { tx in
                let pid = try await backendPID(tx)
                _ = try await tx.query("SELECT id FROM unrace_accounts WHERE id = ? FOR UPDATE", [.text(a)])
                backend.withLock { $0 = pid }
                holding.open()
                await release.wait()
            }
        }
        defer { release.open() }
        await holding.wait()
        let pid = try #require(backend.withLock { $0 })
        let post = Task {
            try await ledger.submit([Transfer(id: "\(p)-post", debit: a, credit: b, amount: 0, flags: .postPending, pendingID: hold.id)])
        }
        try await waitUntilBlocked(by: pid, on: store, "the post waiting for the account's lock")
        // The post read its time before the hold expired, so only its wait can expire it.
        let blocked = try await databaseNow(store)
        #expect(blocked < beforeHold + timeout, "the set-up outlasted the pending transfer's timeout")
        // The pending transfer's timeout passes while the post waits (the time itself is what is
        // tested): it was created before `blocked`, so it has expired a timeout after that.
        try await Task.sleep(for: .milliseconds(timeout + 500))
        release.open()
        try await locker.value
        #expect(try await post.value == [.pendingTransferExpired])
        let (debit, credit) = try await { () async throws -> (Account, Account) in
            let accounts = try await ledger.lookupAccounts([a, b])
            return (accounts[0], accounts[1])
        }()
        // Nothing moved for the expired reservation (b holds only its funding), and it was released.
        #expect(credit.creditsPosted == 100 && credit.creditsPending == 0)
        #expect(debit.debitsPosted == 0 && debit.debitsPending == 0)
    }
}
