/// How a ``Ledger`` batches. Every property has a documented default and bound.
public struct LedgerConfiguration: Sendable {
    /// The most transfers one submission may carry: 8,190 (as TigerBeetle).
    public static var batchSizeMaximum: Int { 8_190 }

    /// The most transfers one group-commit transaction carries. Default 1,000; 1 to ``batchSizeMaximum``.
    public var batchSize = 1_000
    /// How long each group waits for more callers before it runs. Callers that arrive while a
    /// group runs join a later group in any case; the wait lets callers that are just finishing
    /// their previous submission join too. Default 0; at most 100 ms.
    public var batchWait: Duration = .zero
    /// The most transfers waiting for a group at once; past it, ``Ledger/submit(_:)`` throws
    /// ``UnraceError/Code/retryLimitReached`` at once instead of queueing without bound. Default 100,000.
    public var queueCapacity = 100_000
    /// The clock for transfer times and pending timeouts. Default: the system wall clock, which
    /// PostgreSQL replaces with the database's own (see ``WallClock/isRealTime``).
    public var clock: any WallClock = SystemWallClock()

    /// The all-defaults configuration.
    public init() {}
}
