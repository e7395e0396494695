import Synchronization
public import UnraceCore

/// An append-only, double-entry ledger with TigerBeetle's semantics, on SQL: the fix for the lost
/// update on balances.
///
/// - Transfers have client-chosen unique ids: a repeat is ``TransferResult/exists``, a repeat
///   with a different body ``TransferResult/existsWithDifferent(field:)``, and an id whose first
///   attempt failed stays failed (``TransferResult/idAlreadyFailed``).
/// - Balance rules (``Account/Flags/debitsMustNotExceedCredits`` …) are enforced inside the write,
///   over locked rows and by `CHECK` constraints — never by an earlier read.
/// - Money is conserved: posted debits equal posted credits over all accounts (``totals()``).
/// - Hot accounts: concurrent callers' transfers are grouped into one transaction per group
///   (group commit), with a bounded queue and batch size; on PostgreSQL accounts are locked, and new
///   transfers inserted, in id order, so groups never wait on each other in a cycle. On PostgreSQL
///   two groups may be in flight at once (``groupsInFlightMaximum``).
public final class Ledger<S: Store>: Sendable {
    /// The store the ledger lives in.
    public let store: S
    /// The validated configuration.
    public let configuration: LedgerConfiguration

    private struct Queue {
        var waiting: [Request] = []
        var queued = 0
        var draining = false
        /// Groups taken and not yet ended: at most ``Ledger/groupsInFlightMaximum``.
        var running = 0
        /// The hand-off of a group that held its locks while the most groups were in flight: run
        /// when one of them ends.
        var deferred: HandOff?
    }

    private let queue = Mutex(Queue())
    let telemetry: Telemetry

    /// Creates a ledger over a store.
    /// - Throws: ``UnraceError/Code/invalidConfiguration``.
    public init(store: S, configuration: LedgerConfiguration = .init(), observability: Observability = .init()) throws {
        guard (1...LedgerConfiguration.batchSizeMaximum).contains(configuration.batchSize),
            configuration.batchWait >= .zero, configuration.batchWait <= .milliseconds(100),
            configuration.queueCapacity >= configuration.batchSize
        else {
            throw UnraceError(.invalidConfiguration, "batchSize 1…8190, batchWait 0…100 ms, queueCapacity ≥ batchSize")
        }
        self.store = store
        self.configuration = configuration
        self.telemetry = Telemetry(api: "ledger", store: store, observability: observability)
    }

    /// Creates accounts; an existing id answers `exists` or `existsWithDifferent(field)`. The same
    /// id twice in one call is created once (the second answers `exists` or `existsWithDifferent`).
    /// - Throws: ``UnraceError/Code/invalidArgument`` (nothing written) for more than
    ///   ``LedgerConfiguration/batchSizeMaximum`` accounts, or an account that breaks a rule
    ///   (``NameRule/accountID``, a ledger of 1 or more, known flags, zero balances).
    public func createAccounts(_ accounts: [Account]) async throws -> [AccountResult] {
        guard accounts.count <= LedgerConfiguration.batchSizeMaximum else {
            throw UnraceError(.invalidArgument, "at most 8190 accounts per call")
        }
        let accounts = try accounts.map { try $0.validated() }
        guard !accounts.isEmpty else { return [] }
        return try await telemetry.step(store, StepInfo("createAccounts", "\(accounts.count)", clock: configuration.clock)) { context in
            var known = try await context.rows.accounts(accounts.map(\.id), lock: true)
            var results: [AccountResult] = []
            var created: [Account] = []
            for account in accounts {
                if let old = known[account.id] {
                    results.append(AccountResult.compare(account, old))
                } else {
                    known[account.id] = account
                    created.append(account)
                    results.append(.created)
                }
            }
            // In id order: two calls creating the same new accounts in other orders never wait on
            // each other's unique-index entries in a cycle.
            if !created.isEmpty {
                try await context.rows.insertAccounts(created.sorted { $0.id < $1.id }, now: try await context.rows.now())
            }
            return results
        }
    }

    /// Submits transfers; they may be grouped with other callers' into one transaction.
    ///
    /// Each transfer gets a result with a stable code; a linked chain succeeds or fails as a unit.
    /// Balance checks do not count a pending transfer whose timeout has passed: the step releases
    /// expired pendings on the accounts it touches before it applies the batch, up to
    /// ``expiredPendingsPerStepMaximum`` of them (past that, the rest count until a later step or
    /// ``PendingTransferSweeper`` releases them).
    ///
    /// The group runs in a task no caller owns. Cancelling a caller whose transfers are still
    /// queued withdraws them (nothing applied, `CancellationError`); once its group has started,
    /// the call waits for the group's commit and returns its results, cancelled or not — they
    /// were applied. Other callers are never affected.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for malformed input (checked before anything
    ///   is queued: ids that break ``NameRule/transferID``, a zero or negative amount, the same
    ///   debit and credit account, conflicting or unknown flags, a submission ending inside a linked
    ///   chain); ``UnraceError/Code/retryLimitReached`` when the queue is full;
    ///   ``UnraceError/Code/nestedStep`` inside a step's body.
    public func submit(_ transfers: [Transfer]) async throws -> [TransferResult] {
        guard !transfers.isEmpty else { return [] }
        try StepNesting.check()
        guard transfers.count <= configuration.batchSize else {
            throw UnraceError(.invalidArgument, "at most batchSize (\(configuration.batchSize)) transfers per submission")
        }
        let transfers = try transfers.map { try $0.validated() }
        guard !transfers.last!.flags.contains(.linked) else {
            throw UnraceError(.invalidArgument, "a submission must not end inside a linked chain")
        }
        let request = Request(transfers)
        let startDrain = try queue.withLock { queue -> Bool in
            guard queue.queued + transfers.count <= configuration.queueCapacity else {
                throw UnraceError(.retryLimitReached, "the ledger's queue is full; retry later")
            }
            queue.waiting.append(request)
            queue.queued += transfers.count
            if queue.draining { return false }
            queue.draining = true
            return true
        }
        if startDrain { Task.detached { await self.drain() } }
        return try await withTaskCancellationHandler {
            try await request.result()
        } onCancel: {
            withdraw(request)
        }
    }

    /// Takes a cancelled caller's request out of the queue if no group has taken it yet.
    private func withdraw(_ request: Request) {
        let withdrawn = queue.withLock { queue -> Bool in
            guard let index = queue.waiting.firstIndex(where: { $0 === request }) else { return false }
            queue.waiting.remove(at: index)
            queue.queued -= request.transfers.count
            return true
        }
        if withdrawn { request.fulfil(.failure(CancellationError())) }
    }

    /// The most groups of one ledger in flight at once: 2 (its groups hold at most 2 of the
    /// store's connections; its other calls use more), and 1 on a store whose steps run one at a
    /// time. On a store whose steps run concurrently (``Store/runsStepsConcurrently``) a
    /// group that holds its account locks while no other group is in flight starts the next
    /// group, whose `BEGIN` and first reads then overlap its writes and commit (the next one waits
    /// for the locks they share); otherwise the next group starts when one ends. On SQLite and
    /// ``MemoryStore`` starting earlier would only shrink the groups while they wait for the
    /// single writer.
    public static var groupsInFlightMaximum: Int { 2 }

    /// Takes the next group and runs it, in a task of its own; hands the queue on to the next
    /// group's task (see ``groupsInFlightMaximum``). Exactly one hand-off is pending or one task
    /// is forming a group while `draining` is set.
    private func drain() async {
        // Group commit: give callers that are about to submit a moment to join this group.
        // A local pause, on real time: the ledger's clock decides expiries, not this wait.
        if configuration.batchWait > .zero { try? await Task.sleep(for: configuration.batchWait) }
        let group = queue.withLock { queue -> [Request] in
            var group: [Request] = []
            var size = 0
            while let next = queue.waiting.first, group.isEmpty || size + next.transfers.count <= configuration.batchSize {
                group.append(next)
                size += next.transfers.count
                queue.waiting.removeFirst()
            }
            queue.queued -= size
            if group.isEmpty { queue.draining = false } else { queue.running += 1 }
            return group
        }
        guard !group.isEmpty else { return }
        let next = HandOff { Task.detached { await self.drain() } }
        let overlaps: Bool = store.runsStepsConcurrently
        // Once per group, however often its step runs again: a retry must not defer a hand-off
        // that has already run over another group's deferred one.
        let lockedOnce = HandOff {
            guard overlaps else { return }
            let now = self.queue.withLock { queue -> Bool in
                if queue.running < Self.groupsInFlightMaximum { return true }
                queue.deferred = next
                return false
            }
            if now { next.run() }
        }
        do {
            let results = try await apply(group.flatMap(\.transfers), locked: { lockedOnce.run() })
            ended(next)
            var offset = 0
            for request in group {
                request.fulfil(.success(Array(results[offset..<(offset + request.transfers.count)])))
                offset += request.transfers.count
            }
        } catch {
            ended(next)
            for waiter in group { waiter.fulfil(.failure(error)) }
        }
    }

    /// A group ended: its hand-off runs if it has not yet, and so does a deferred one (another
    /// group's, which held its locks while this one was in flight, or this group's own). Only the
    /// newest group's hand-off is ever unused, so at most one of the two starts a task.
    private func ended(_ next: HandOff) {
        let deferred = queue.withLock { queue -> HandOff? in
            queue.running -= 1
            defer { queue.deferred = nil }
            return queue.deferred
        }
        next.run()
        deferred?.run()
    }

    /// The most expired pending transfers one step releases; more are left to the next step or
    /// to ``voidExpiredPendingTransfers(limit:)``.
    public static var expiredPendingsPerStepMaximum: Int { 1_000 }

    /// One group's step: lock the accounts (in id order), release expired pendings on them, run
    /// ``LedgerEngine``, write the changes.
    private func apply(_ batch: [Transfer], locked: @escaping @Sendable () -> Void) async throws -> [TransferResult] {
        let results = try await telemetry.step(store, StepInfo("submit", "\(batch.count)", clock: configuration.clock)) { context in
            let rows = context.rows
            let ids = LedgerEngine.snapshotIDs(of: batch)
            let (accounts, expired, now) = try await Self.lockAccounts(rows, ids.accounts)
            locked()
            let (stored, failed) = try await rows.transfers(ids.transfers)
            var engine = LedgerEngine(accounts: accounts, transfers: stored, failed: failed)
            let (results, changes) = engine.apply(batch, now: now, expired: expired)
            try await Self.write(changes, rows, now: now)
            return results
        }
        telemetry.sample("unrace_ledger_group_size", [], batch.count)
        var byCode: [String: Int] = [:]
        for result in results { byCode[result.code, default: 0] += 1 }
        for (code, count) in byCode { telemetry.count("unrace_ledger_transfers_total", [("result", code)], by: count) }
        return results
    }

    /// Locks `ids` and the other accounts of expired pendings on them, all in one id-ordered
    /// statement, and returns the accounts with the expired pendings whose both accounts are
    /// locked, and the time the group decides at: after a wait for the locks of 100 ms or more,
    /// the store's time after the wait (on PostgreSQL's clock: a pending transfer that expired
    /// during the wait is expired for the group).
    private static func lockAccounts(
        _ rows: any StoreRows,
        _ ids: [String]
    ) async throws -> (accounts: [String: Account], expired: [StoredTransfer], now: Timestamp) {
        let before = try await rows.now()
        let limit = expiredPendingsPerStepMaximum
        let candidates = try await rows.expiredPendingTransfers(at: before, touching: ids, limit: limit)
        var wanted = Set(ids)
        for pending in candidates { wanted.formUnion([pending.transfer.debitAccount, pending.transfer.creditAccount]) }
        // Only the locking statement is timed: its wait, not the round trips before it.
        let locking = ContinuousClock.now
        let accounts = try await rows.accounts(wanted.sorted(), lock: true)
        let now = ContinuousClock.now - locking >= stepTimeRereadAfterWait ? try await rows.timeAfterWait() : before
        // Read again under the locks: another step may have settled some meanwhile (and more may
        // have expired during a wait).
        let expired =
            candidates.isEmpty && now == before
            ? []
            : try await rows.expiredPendingTransfers(at: now, touching: ids, limit: limit)
                .filter { wanted.contains($0.transfer.debitAccount) && wanted.contains($0.transfer.creditAccount) }
        return (accounts, expired, now)
    }

    private static func write(_ changes: LedgerEngine.Changes, _ rows: any StoreRows, now: Timestamp) async throws {
        // New transfers and failures share one id space (and unique index): both are inserted in
        // one id order, as the accounts, so two groups inserting the same ids (one creating an id
        // the other fails) never wait on each other's index entries in a cycle. Each run of one
        // kind is one call; most steps have one run. The balances go first, with the new
        // transfers that come before any failure (one statement where the store can).
        let created = changes.created.sorted { $0.transfer.id < $1.transfer.id }
        let failures = changes.failures.sorted { $0.key < $1.key }.map { (id: $0.key, code: $0.value) }
        let leading = failures.first.map { first in created.prefix { $0.transfer.id < first.id }.count } ?? created.count
        try await rows.saveBalances(changes.accounts.values.sorted { $0.id < $1.id }, insertingTransfers: Array(created[..<leading]))
        var (c, f) = (leading, 0)
        while c < created.count || f < failures.count {
            if f == failures.count || (c < created.count && created[c].transfer.id < failures[f].id) {
                let end =
                    failures.count == f ? created.count : created[c...].firstIndex { $0.transfer.id > failures[f].id } ?? created.count
                try await rows.insertTransfers(Array(created[c..<end]))
                c = end
            } else {
                let end =
                    created.count == c ? failures.count : failures[f...].firstIndex { $0.id > created[c].transfer.id } ?? failures.count
                try await rows.insertTransferFailures(Array(failures[f..<end]), now: now)
                f = end
            }
        }
        if !changes.updated.isEmpty { try await rows.saveTransferStates(changes.updated.values.sorted { $0.transfer.id < $1.transfer.id }) }
    }

    /// Voids pending transfers whose timeout has passed, at most `limit` (1 to 10,000) in one
    /// step, so balances and totals show them released. Balance checks already ignore them; call
    /// this periodically (``PendingTransferSweeper`` does) to keep stored balances current.
    /// - Returns: how many were released. Fewer than `limit` usually means none are left; on
    ///   PostgreSQL a concurrent sweeper can make a round come up short while some remain (the
    ///   next round, after ``PendingTransferSweeper/interval``, takes them).
    public func voidExpiredPendingTransfers(limit: Int = 1_000) async throws -> Int {
        guard (1...10_000).contains(limit) else { throw UnraceError(.invalidArgument, "limit must be between 1 and 10000") }
        return try await telemetry.step(store, StepInfo("voidExpired", "\(limit)", clock: configuration.clock)) { context in
            let rows = context.rows
            let now = try await rows.now()
            let candidates = try await rows.expiredPendingTransfers(at: now, touching: nil, limit: limit)
            guard !candidates.isEmpty else { return 0 }
            let ids = Set(candidates.flatMap { [$0.transfer.debitAccount, $0.transfer.creditAccount] })
            let accounts = try await rows.accounts(ids.sorted(), lock: true)
            let expired = try await rows.expiredPendingTransfers(at: now, touching: nil, limit: limit)
                .filter { ids.contains($0.transfer.debitAccount) && ids.contains($0.transfer.creditAccount) }
            var engine = LedgerEngine(accounts: accounts, transfers: [:], failed: [])
            let (_, changes) = engine.apply([], now: now, expired: expired)
            try await Self.write(changes, rows, now: now)
            return changes.updated.count
        }
    }

    /// The accounts with these ids that exist (ids follow ``NameRule/accountID``). Their pending
    /// balances include expired pendings not yet released by a step or the sweeper.
    ///
    /// One read of up to 500 ids sees one committed state. More ids are read 500 at a time
    /// without a transaction on the SQL stores, so a transfer that commits in between can show in
    /// one part and not another: for balances that must add up, look up at most 500 at once (or
    /// use ``totals()``).
    public func lookupAccounts(_ ids: [String]) async throws -> [Account] {
        let ids = try ids.map { try NameRule.accountID.validate($0) }
        let found = try await telemetry.step(
            store,
            StepInfo("lookupAccounts", "\(ids.count)", clock: configuration.clock, isReadOnly: true)
        ) { context in
            try await context.rows.accounts(ids, lock: false)
        }
        return ids.compactMap { found[$0] }
    }

    /// Sums over every account, in 128-bit arithmetic; ``LedgerTotals/isBalanced`` is always true.
    public func totals() async throws -> LedgerTotals {
        try await telemetry.step(store, StepInfo("totals", "", clock: configuration.clock, isReadOnly: true)) { context in
            try await context.rows.ledgerTotals()
        }
    }
}

/// Runs its action once, however many times it is asked to.
private final class HandOff: Sendable {
    private let action: Mutex<(@Sendable () -> Void)?>

    init(_ action: @escaping @Sendable () -> Void) { self.action = Mutex(action) }

    func run() {
        action.withLock { action in
            defer { action = nil }
            return action
        }?()
    }
}

/// One caller's submission waiting for its group.
private final class Request: Sendable {
    let transfers: [Transfer]
    private let state = Mutex<(result: Result<[TransferResult], any Error>?, waiter: CheckedContinuation<[TransferResult], any Error>?)>(
        (nil, nil)
    )

    init(_ transfers: [Transfer]) { self.transfers = transfers }

    /// Delivers the result once; later calls are ignored.
    func fulfil(_ result: Result<[TransferResult], any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<[TransferResult], any Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func result() async throws -> [TransferResult] {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<[TransferResult], any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
