public import UnraceCore
import Synchronization

/// How a ``Ledger`` batches. Every property has a documented default and bound.
public struct LedgerConfiguration: Sendable {
    /// The most transfers one submission may carry: 8,190 (as TigerBeetle).
    public static var batchSizeMaximum: Int { 8_190 }

    /// The most transfers one group-commit transaction carries. Default 1,000; 1 to ``batchSizeMaximum``.
    public var batchSize = 1_000
    /// How long each group waits for more callers before it runs. Callers that arrive while a
    /// group runs join the next group in any case; the wait lets callers that are just finishing
    /// their previous submission join too. Default 0; at most 100 ms.
    public var batchWait: Duration = .zero
    /// The most transfers waiting for a group at once; past it, ``Ledger/submit(_:)`` throws
    /// ``UnraceError/Code/retryLimitReached`` at once instead of queueing without bound. Default 100,000.
    public var queueCapacity = 100_000
    /// The clock for transfer times and pending timeouts.
    public var clock: any WallClock = SystemWallClock()

    /// The all-defaults configuration.
    public init() {}
}

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
///   (group commit), with a bounded queue and batch size; on PostgreSQL accounts are locked in id
///   order, so groups never deadlock.
public final class Ledger<S: Store>: Sendable {
    /// The store the ledger lives in.
    public let store: S
    /// The validated configuration.
    public let configuration: LedgerConfiguration

    private struct Queue {
        var waiting: [Request] = []
        var queued = 0
        var draining = false
    }

    private let queue = Mutex(Queue())

    /// Creates a ledger over a store.
    /// - Throws: ``UnraceError/Code/invalidConfiguration``.
    public init(store: S, configuration: LedgerConfiguration = .init()) throws {
        guard (1...LedgerConfiguration.batchSizeMaximum).contains(configuration.batchSize),
            configuration.batchWait >= .zero, configuration.batchWait <= .milliseconds(100),
            configuration.queueCapacity >= configuration.batchSize
        else {
            throw UnraceError(.invalidConfiguration, "batchSize 1…8190, batchWait 0…100 ms, queueCapacity ≥ batchSize")
        }
        self.store = store
        self.configuration = configuration
    }

    /// Creates accounts; an existing id answers `exists` or `existsWithDifferent(field)`.
    public func createAccounts(_ accounts: [Account]) async throws -> [AccountResult] {
        guard accounts.count <= LedgerConfiguration.batchSizeMaximum else {
            throw UnraceError(.invalidArgument, "at most 8190 accounts per call")
        }
        for account in accounts {
            guard !account.id.isEmpty, account.id.utf8.count <= Transfer.idByteCountMaximum, account.ledger >= 1 else {
                throw UnraceError(.invalidArgument, "an account needs an id of 1 to 255 bytes and a ledger of 1 or more")
            }
            guard account.debitsPending == 0, account.debitsPosted == 0, account.creditsPending == 0, account.creditsPosted == 0 else {
                throw UnraceError(.invalidArgument, "accounts are created with zero balances; move money with transfers")
            }
        }
        return try await store.createAccounts(accounts, now: configuration.clock.now())
    }

    /// Submits transfers; they may be grouped with other callers' into one transaction.
    ///
    /// Each transfer gets a result with a stable code; a linked chain succeeds or fails as a unit.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for malformed input (checked before anything
    ///   is written: empty or oversized ids, a zero or negative amount, the same debit and credit
    ///   account, conflicting flags, a submission ending inside a linked chain);
    ///   ``UnraceError/Code/retryLimitReached`` when the queue is full.
    public func submit(_ transfers: [Transfer]) async throws -> [TransferResult] {
        guard !transfers.isEmpty else { return [] }
        guard transfers.count <= configuration.batchSize else {
            throw UnraceError(.invalidArgument, "at most batchSize (\(configuration.batchSize)) transfers per submission")
        }
        for transfer in transfers { try transfer.validate() }
        guard !transfers.last!.flags.contains(.linked) else {
            throw UnraceError(.invalidArgument, "a submission must not end inside a linked chain")
        }
        let request = Request(transfers)
        let lead = try queue.withLock { queue -> Bool in
            guard queue.queued + transfers.count <= configuration.queueCapacity else {
                throw UnraceError(.retryLimitReached, "the ledger's queue is full; retry later")
            }
            queue.waiting.append(request)
            queue.queued += transfers.count
            if queue.draining { return false }
            queue.draining = true
            return true
        }
        if lead { await drain() }
        return try await request.result()
    }

    /// Runs groups until the queue is empty. Only one caller drains at a time.
    private func drain() async {
        while true {
            // Group commit: give callers that are about to submit a moment to join this group.
            if configuration.batchWait > .zero { try? await configuration.clock.sleep(for: configuration.batchWait) }
            let group = queue.withLock { queue -> [Request] in
                var group: [Request] = []
                var size = 0
                while let next = queue.waiting.first, group.isEmpty || size + next.transfers.count <= configuration.batchSize {
                    group.append(next)
                    size += next.transfers.count
                    queue.waiting.removeFirst()
                }
                queue.queued -= size
                if group.isEmpty { queue.draining = false }
                return group
            }
            guard !group.isEmpty else { return }
            do {
                let results = try await store.submitTransfers(group.flatMap(\.transfers), now: configuration.clock.now())
                var offset = 0
                for request in group {
                    request.fulfil(.success(Array(results[offset..<(offset + request.transfers.count)])))
                    offset += request.transfers.count
                }
            } catch {
                group.forEach { $0.fulfil(.failure(error)) }
            }
        }
    }

    /// The accounts with these ids that exist.
    public func lookupAccounts(_ ids: [String]) async throws -> [Account] {
        try await store.lookupAccounts(ids)
    }

    /// Sums over every account; ``LedgerTotals/isBalanced`` is always true.
    public func totals() async throws -> LedgerTotals {
        try await store.ledgerTotals()
    }
}

/// One caller's submission waiting for its group.
private final class Request: Sendable {
    let transfers: [Transfer]
    private let state = Mutex<(result: Result<[TransferResult], any Error>?, waiter: CheckedContinuation<[TransferResult], any Error>?)>((nil, nil))

    init(_ transfers: [Transfer]) { self.transfers = transfers }

    func fulfil(_ result: Result<[TransferResult], any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<[TransferResult], any Error>? in
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
