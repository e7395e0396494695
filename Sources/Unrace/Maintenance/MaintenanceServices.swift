public import Logging
public import ServiceLifecycle
import UnraceCore

/// A swift-service-lifecycle `Service` that voids expired pending transfers, so stored balances
/// and totals show them released (balance checks already ignore them).
///
/// Each round voids up to ``batchLimit`` in one short step (``Ledger/voidExpiredPendingTransfers(limit:)``);
/// a full batch runs the next round at once, a partial one waits ``interval`` on the ledger's
/// clock. A store error is logged and the round retried after the interval. The service stops when
/// its task is cancelled or the service group shuts down gracefully; a round in progress then
/// rolls back (nothing of it is written) and the next sweeper takes it up.
public struct PendingTransferSweeper<S: Store>: Service {
    /// The ledger swept.
    public let ledger: Ledger<S>
    /// How long to wait after a round that found fewer than ``batchLimit``. Default 1 s.
    public var interval: Duration
    /// The most transfers one round voids (1 to 10,000). Default 1,000.
    public var batchLimit: Int
    let logger: Logger

    /// A sweeper of `ledger`.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h or a
    ///   batch limit outside 1…10,000.
    public init(
        ledger: Ledger<S>,
        interval: Duration = .seconds(1),
        batchLimit: Int = 1_000,
        logger: Logger = Logger(label: "unrace.ledger.sweeper")
    ) throws {
        self.ledger = ledger
        self.interval = interval
        self.batchLimit = batchLimit
        self.logger = logger
        try MaintenanceLoop.validate(interval: interval, batchLimit: batchLimit, "a sweeper")
    }

    /// Sweeps until cancelled or shut down gracefully.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` when ``interval`` or ``batchLimit``
    ///   was set out of range after the sweeper was made.
    public func run() async throws {
        try await MaintenanceLoop.run(
            interval: interval,
            batchLimit: batchLimit,
            "a sweeper",
            clock: ledger.configuration.clock,
            logger: logger,
            failure: "voiding expired pending transfers failed; retrying after the interval"
        ) {
            let voided = try await ledger.voidExpiredPendingTransfers(limit: batchLimit)
            if voided > 0 { logger.debug("voided expired pending transfers", metadata: ["count": "\(voided)"]) }
            return voided == batchLimit
        }
    }
}

/// A `Service` that purges expired operation records — of the given scopes, or of every scope
/// in the store — in bounded batches (``Operations/purgeExpired(scope:limit:)``,
/// ``Operations/purgeExpiredInEveryScope(limit:)``), so completed keys do not pile up past their
/// retention. Loops like ``PendingTransferSweeper``, on the operations' clock.
public struct ExpiredRecordPurger<S: Store>: Service {
    /// The operations purged.
    public let operations: Operations<S>
    /// The scopes purged, each in batches of ``batchLimit``; empty when ``everyScope`` is set.
    public let scopes: [Scope]
    /// Whether every scope is purged, also scopes nobody can list (the idempotency middleware's
    /// per-principal scopes).
    public let everyScope: Bool
    /// How long to wait after a round that found less than a full batch in every scope. Default 60 s.
    public var interval: Duration
    /// The most records one scope's batch deletes (1 to 10,000). Default 1,000.
    public var batchLimit: Int
    let logger: Logger

    /// A purger of `scopes`.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h, a
    ///   batch limit outside 1…10,000, no scope, or a scope outside the operations'
    ///   ``OperationsConfiguration/allowedScopes``.
    public init(
        operations: Operations<S>,
        scopes: [Scope],
        interval: Duration = .seconds(60),
        batchLimit: Int = 1_000,
        logger: Logger = Logger(label: "unrace.purger")
    ) throws {
        guard !scopes.isEmpty else { throw UnraceError(.invalidConfiguration, "a purger needs at least one scope") }
        // A scope every round would refuse (unknown_scope) would stop the scopes after it, forever.
        if let allowed = operations.configuration.allowedScopes, let outside = scopes.first(where: { !allowed.contains($0) }) {
            throw UnraceError(
                .invalidConfiguration,
                "a purger's scope is not in the operations' allowedScopes",
                detail: "scope \(outside)"
            )
        }
        try self.init(operations: operations, scopes: scopes, everyScope: false, interval: interval, batchLimit: batchLimit, logger: logger)
    }

    /// A purger of every scope of `operations`' store, in batches of `batchLimit` records across
    /// scopes, earliest expiry first.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h or a
    ///   batch limit outside 1…10,000.
    public init(
        everyScopeOf operations: Operations<S>,
        interval: Duration = .seconds(60),
        batchLimit: Int = 1_000,
        logger: Logger = Logger(label: "unrace.purger")
    ) throws {
        try self.init(operations: operations, scopes: [], everyScope: true, interval: interval, batchLimit: batchLimit, logger: logger)
    }

    private init(operations: Operations<S>, scopes: [Scope], everyScope: Bool, interval: Duration, batchLimit: Int, logger: Logger) throws {
        self.operations = operations
        self.scopes = scopes
        self.everyScope = everyScope
        self.interval = interval
        self.batchLimit = batchLimit
        self.logger = logger
        try MaintenanceLoop.validate(interval: interval, batchLimit: batchLimit, "a purger")
    }

    /// Purges until cancelled or shut down gracefully.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` when ``interval`` or ``batchLimit``
    ///   was set out of range after the purger was made.
    public func run() async throws {
        try await MaintenanceLoop.run(
            interval: interval,
            batchLimit: batchLimit,
            "a purger",
            clock: operations.configuration.clock,
            logger: logger,
            failure: "purging expired operation records failed; retrying after the interval"
        ) {
            if everyScope { return try await operations.purgeExpiredInEveryScope(limit: batchLimit) == batchLimit }
            var full = false
            for scope in scopes {
                let purged = try await operations.purgeExpired(scope: scope, limit: batchLimit)
                full = full || purged == batchLimit
            }
            return full
        }
    }
}

/// A `Service` that gives back the units of expired holds (``Reservations/releaseExpiredHolds(limit:)``),
/// so resources nobody holds again still show their expired holds released. Loops like
/// ``PendingTransferSweeper``, on the reservations' clock.
public struct ExpiredHoldReaper<S: Store>: Service {
    /// The reservations reaped.
    public let reservations: Reservations<S>
    /// How long to wait after a round that found fewer than ``batchLimit`` resources. Default 1 s.
    public var interval: Duration
    /// The most resources one round reaps (1 to 10,000). Default 100.
    public var batchLimit: Int
    let logger: Logger

    /// A reaper of `reservations`.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h or a
    ///   batch limit outside 1…10,000.
    public init(
        reservations: Reservations<S>,
        interval: Duration = .seconds(1),
        batchLimit: Int = 100,
        logger: Logger = Logger(label: "unrace.reaper")
    ) throws {
        self.reservations = reservations
        self.interval = interval
        self.batchLimit = batchLimit
        self.logger = logger
        try MaintenanceLoop.validate(interval: interval, batchLimit: batchLimit, "a reaper")
    }

    /// Reaps until cancelled or shut down gracefully.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` when ``interval`` or ``batchLimit``
    ///   was set out of range after the reaper was made.
    public func run() async throws {
        try await MaintenanceLoop.run(
            interval: interval,
            batchLimit: batchLimit,
            "a reaper",
            clock: reservations.clock,
            logger: logger,
            failure: "releasing expired holds failed; retrying after the interval"
        ) {
            let (released, resources) = try await reservations.releaseExpiredHoldsCounted(limit: batchLimit)
            if released > 0 { logger.debug("released expired holds", metadata: ["count": "\(released)"]) }
            // A full batch that released nothing (resources whose rows are gone) waits the interval.
            return resources == batchLimit && released > 0
        }
    }
}

/// A `Service` that reports inbox gaps older than the inbox's gap timeout
/// (``Inbox/gaps(limit:)``) every ``interval``: a warning with how many streams wait and how
/// long the oldest has (never a stream's name), and `report` with the gaps, for your own
/// alerting or a ``Inbox/skipGap(stream:_:)`` policy.
public struct InboxGapMonitor<S: Store>: Service {
    /// The inbox watched.
    public let inbox: Inbox<S>
    /// How often to look. Default 60 s.
    public var interval: Duration
    let report: @Sendable ([InboxGap]) async -> Void
    let logger: Logger

    /// A monitor of `inbox`.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h.
    public init(
        inbox: Inbox<S>,
        interval: Duration = .seconds(60),
        logger: Logger = Logger(label: "unrace.inbox.gaps"),
        report: @escaping @Sendable ([InboxGap]) async -> Void = { _ in }
    ) throws {
        self.inbox = inbox
        self.interval = interval
        self.report = report
        self.logger = logger
        try MaintenanceLoop.validate(interval: interval, batchLimit: 1, "a gap monitor")
    }

    /// Watches until cancelled or shut down gracefully.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` when ``interval`` was set out of range
    ///   after the monitor was made.
    public func run() async throws {
        try await MaintenanceLoop.run(
            interval: interval,
            batchLimit: 1,
            "a gap monitor",
            clock: inbox.configuration.clock,
            logger: logger,
            failure: "reading inbox gaps failed; retrying after the interval"
        ) {
            let gaps = try await inbox.gaps(limit: 100)
            if let oldest = gaps.first {
                let now = inbox.configuration.clock.now()
                logger.warning(
                    "inbox streams wait for missing events",
                    metadata: [
                        "streams": "\(gaps.count)\(gaps.count == 100 ? "+" : "")",
                        "oldest_gap_ms": "\(now.milliseconds &- oldest.since.milliseconds)",
                    ]
                )
                await report(gaps)
            }
            return false
        }
    }
}

/// A `Service` that deletes acked queue messages older than ``age``
/// (``MessageQueue/purgeCompleted(olderThan:limit:)``). Loops like ``PendingTransferSweeper``,
/// on the queue's clock.
public struct CompletedMessagePurger<S: Store>: Service {
    /// The queue purged.
    public let queue: MessageQueue<S>
    /// How long an acked message is kept. Default 24 h.
    public var age: Duration
    /// How long to wait after a round that found less than a full batch. Default 60 s.
    public var interval: Duration
    /// The most messages one round deletes (1 to 1,000). Default 1,000.
    public var batchLimit: Int
    let logger: Logger

    /// A purger of `queue`.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for an interval outside 1 ms…1 h, a
    ///   batch limit outside 1…1,000 or an age outside 0…3,650 days.
    public init(
        queue: MessageQueue<S>,
        age: Duration = .seconds(86_400),
        interval: Duration = .seconds(60),
        batchLimit: Int = 1_000,
        logger: Logger = Logger(label: "unrace.queue.purger")
    ) throws {
        self.queue = queue
        self.age = age
        self.interval = interval
        self.batchLimit = batchLimit
        self.logger = logger
        try validate()
    }

    /// Its bounds: the loop's common ones, and its own (a batch of at most 1,000, an age of 0 to
    /// 3,650 days).
    func validate() throws {
        try MaintenanceLoop.validate(interval: interval, batchLimit: batchLimit, "a queue purger")
        guard batchLimit <= QueueConfiguration.batchMaximum, age >= .zero, age <= .seconds(3_650 * 86_400) else {
            throw UnraceError(.invalidConfiguration, "a queue purger needs a batch limit of 1 to 1,000 and an age of 0 to 3,650 days")
        }
    }

    /// Purges until cancelled or shut down gracefully.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` when ``age``, ``interval`` or
    ///   ``batchLimit`` was set out of range after the purger was made.
    public func run() async throws {
        try validate()
        try await MaintenanceLoop.run(
            interval: interval,
            batchLimit: batchLimit,
            "a queue purger",
            clock: queue.configuration.clock,
            logger: logger,
            failure: "purging acked queue messages failed; retrying after the interval"
        ) {
            try await queue.purgeCompleted(olderThan: age, limit: batchLimit) == batchLimit
        }
    }
}
