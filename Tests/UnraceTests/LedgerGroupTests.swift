import Synchronization
import Testing
import Unrace

/// How the ledger runs its groups: on PostgreSQL the next group overlaps the one before it, at
/// most two in flight; on SQLite and memory one at a time.
@Suite("Ledger groups")
struct LedgerGroupTests {
    /// The stores whose steps run concurrently (PostgreSQL, directly or through Fluent), and the rest.
    static let concurrentBackends = storeBackends.filter { [.postgres, .fluentPostgres].contains($0) }
    static let serialBackends = storeBackends.filter { !concurrentBackends.contains($0) }

    @Test(
        "on PostgreSQL the next group starts while the one before it holds its locks, and both commit",
        arguments: concurrentBackends
    )
    func nextGroupOverlaps(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.nextGroupOverlaps(store) }
    }

    static func nextGroupOverlaps<S: Store>(_ base: S) async throws {
        #expect(base.runsStepsConcurrently)
        let (first, second, accounts) = try await overlappingGroups(base, name: "overlap", ids: ("1", "2"), accounts: (0, 1), (0, 1))
        #expect(first == [.created])
        #expect(second == [.created])
        #expect(try await Ledger(store: base).lookupAccounts([accounts[1]])[0].creditsPosted == 2)
        #expect(try await Ledger(store: base).totals().isBalanced)
    }

    /// Submits a transfer whose group stops before its commit (holding its locks), then, while it
    /// is held, a second transfer, and waits until the second's group's step begins: it begins
    /// only if the next group starts while the one before holds its locks. Then lets the first
    /// commit, and returns both results (four accounts; `ids` and account indexes per transfer).
    static func overlappingGroups<S: Store>(
        _ base: S,
        name: String,
        ids: (String, String),
        accounts first: (Int, Int),
        _ second: (Int, Int)
    ) async throws -> (first: [TransferResult], second: [TransferResult], accounts: [String]) {
        let prefix = uniqueName(name)
        let accounts = (0..<4).map { "\(prefix)-\($0)" }
        _ = try await Ledger(store: base).createAccounts(accounts.map { Account(id: $0, ledger: 1, code: 1) })
        let store = HeldCommitStore(base: base)
        defer { store.gate.open() }  // on every path: a failing test must not leave the first group held
        let ledger = try Ledger(store: store)
        func transfer(_ id: String, _ pair: (Int, Int)) -> Transfer {
            Transfer(id: "\(prefix)-\(id)", debit: accounts[pair.0], credit: accounts[pair.1], amount: 1)
        }
        // The first group locks, writes and stops before its commit, still holding its locks.
        let firstTask = Task { [ledger] in try await ledger.submit([transfer(ids.0, first)]) }
        await store.firstBodyDone.wait()
        // A caller arriving now gets a group of its own at once: its step begins (and, on shared
        // accounts, waits for the first group's locks) instead of waiting for the first to end.
        let secondTask = Task { [ledger] in try await ledger.submit([transfer(ids.1, second)]) }
        try await within(.seconds(60), "the second group's step starting while the first holds its locks") {
            await store.secondStarted.waitUnlessCancelled()
        }
        store.gate.open()
        let firstResult = try await within(.seconds(120), "the first group") { try await firstTask.value }
        let secondResult = try await within(.seconds(120), "the second group") { try await secondTask.value }
        return (firstResult, secondResult, accounts)
    }

    @Test(
        "on PostgreSQL one id in two overlapping groups on other accounts: created once, then exists with a different debit",
        arguments: concurrentBackends
    )
    func sameIDInOverlappingGroups(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.sameIDInOverlappingGroups(store) }
    }

    static func sameIDInOverlappingGroups<S: Store>(_ base: S) async throws {
        // The second group, on two other accounts, takes its locks at once. If it reads before
        // the first commits, it finds no such id and its insert waits on the first's unique-index
        // entry, loses, and its step runs again; if it reads after, it sees the id. Either way it
        // answers about the first.
        let (first, second, accounts) = try await overlappingGroups(base, name: "sameid", ids: ("x", "x"), accounts: (0, 1), (2, 3))
        #expect(first == [.created])
        #expect(second == [.existsWithDifferent(field: "debit_account")])
        let balances = try await Ledger(store: base).lookupAccounts(accounts).map(\.balance)
        #expect(balances == [-1, 1, 0, 0])
        #expect(try await Ledger(store: base).totals().isBalanced)
    }

    @Test(
        "on PostgreSQL at most two groups are in flight, even on accounts that never contend",
        arguments: concurrentBackends
    )
    func groupsInFlightBound(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.groupsInFlightBound(store) }
    }

    static func groupsInFlightBound<S: Store>(_ base: S) async throws {
        // 32 callers, each on a pair of accounts of its own, one transfer per group: every group
        // gets its locks at once, and without the bound each would start the next.
        let most = try await submitsInFlight(base, name: "bound", accounts: 64, batchSize: 1) { index in (2 * index, 2 * index + 1) }
        #expect(most <= Ledger<S>.groupsInFlightMaximum, "at most \(Ledger<S>.groupsInFlightMaximum) groups at once")
    }

    /// Sends 32 callers' transfers at once (between the accounts `pair` picks for each caller)
    /// through a ledger of groups of at most `batchSize`, and returns the most `submit` steps that
    /// were in flight at once; every transfer is created and money is conserved.
    static func submitsInFlight<S: Store>(
        _ base: S,
        name: String,
        accounts count: Int,
        batchSize: Int,
        pair: @escaping @Sendable (Int) -> (Int, Int)
    ) async throws -> Int {
        let prefix = uniqueName(name)
        let accounts = (0..<count).map { "\(prefix)-\($0)" }
        _ = try await Ledger(store: base).createAccounts(accounts.map { Account(id: $0, ledger: 1, code: 1) })
        let store = HeldCommitStore(base: base)
        store.gate.open()  // nothing is held: the store only counts the submit steps in flight
        var configuration = LedgerConfiguration()
        configuration.batchSize = batchSize
        let ledger = try Ledger(store: store, configuration: configuration)
        let start = Barrier(parties: 32)
        try await within(.seconds(120), "32 callers' transfers") {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<32 {
                    group.addTask {
                        await start.arriveAndWait()
                        let (debit, credit) = pair(index)
                        let transfer = Transfer(id: "\(prefix)-t\(index)", debit: accounts[debit], credit: accounts[credit], amount: 1)
                        let result = try await ledger.submit([transfer])
                        #expect(result == [.created])
                    }
                }
                try await group.waitForAll()
            }
        }
        #expect(try await Ledger(store: base).totals().isBalanced)
        return store.mostInFlight
    }

    @Test(
        "on SQLite and memory the next group starts once the one before it ends",
        arguments: serialBackends
    )
    func serialGroups(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.serialGroups(store) }
    }

    static func serialGroups<S: Store>(_ base: S) async throws {
        #expect(!base.runsStepsConcurrently)
        // 32 callers at once, in groups of at most 4: with groups started early, a second group's
        // step would begin while the first still runs (and wait for the single writer).
        let most = try await submitsInFlight(base, name: "serial", accounts: 4, batchSize: 4) { index in (index % 4, (index + 1) % 4) }
        #expect(most == 1, "one submit step at a time")
    }
}

/// A store whose first `submit` step stops after its body, before its commit (holding what the
/// body locked), until the test opens `gate`; it notes when a second `submit` step begins, and
/// how many were in flight at once.
private struct HeldCommitStore<Base: Store>: Store {
    typealias Transaction = Base.Transaction
    let base: Base
    let firstBodyDone = Latch()
    let secondStarted = Latch()
    let gate = Latch()
    private let started = Counter()
    private let inFlight = InFlight()
    /// The most `submit` steps that were in this store's `step` at once.
    var mostInFlight: Int { inFlight.most }
    var runsStepsConcurrently: Bool { base.runsStepsConcurrently }

    init(base: Base) { self.base = base }

    func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Base.Transaction>) async throws -> T) async throws -> T {
        guard "\(step.name)" == "submit" else { return try await base.step(step, body) }
        let number = started.increment()
        inFlight.enter()
        defer { inFlight.leave() }
        if number == 2 { secondStarted.open() }
        return try await base.step(step) { context in
            let result = try await body(context)
            if number == 1 {
                firstBodyDone.open()
                await gate.waitForTheTest()
            }
            return result
        }
    }

    func withTransaction<T: Sendable>(_ body: (Base.Transaction) async throws -> T) async throws -> T {
        try await base.withTransaction(body)
    }
}

/// How many callers are inside a section now, and the most there were at once.
private final class InFlight: Sendable {
    private let count = Mutex((now: 0, most: 0))
    var most: Int { count.withLock { $0.most } }
    func enter() { count.withLock { $0 = (now: $0.now + 1, most: max($0.most, $0.now + 1)) } }
    func leave() { count.withLock { $0.now -= 1 } }
}
