import UnraceCore

/// Bounded counters and per-window quotas: guarded atomic updates, one conditional statement
/// each, with no prior read.
///
/// A naive read-modify-write of stock, seats left or a wallet balance loses updates and crosses
/// its bounds when two callers race; ``adjust(_:by:)`` checks the bound in the statement that writes.
public struct Counters<S: Store>: Sendable {
    /// The largest step a single adjustment may take: 2^53.
    public static var deltaMaximum: Int64 { 1 << 53 }

    /// The store the counters live in.
    public let store: S
    let clock: any WallClock

    /// Creates the API over a store.
    public init(store: S, clock: any WallClock = SystemWallClock()) {
        self.store = store
        self.clock = clock
    }

    /// Creates a counter with its bounds (stock: floor 0; a seat pool: floor 0, ceiling capacity).
    /// - Returns: `false` if it already existed (left unchanged).
    @discardableResult
    public func create(_ name: String, value: Int64, floor: Int64 = 0, ceiling: Int64 = .max) async throws -> Bool {
        try Records<S>.validate(name: name, "counter name")
        guard floor <= value, value <= ceiling else {
            throw UnraceError(.invalidArgument, "a counter's value must lie between its floor and ceiling")
        }
        return try await store.createCounter(name: name, value: value, floor: floor, ceiling: ceiling)
    }

    /// Adds `delta` (negative to take) if the result stays within the counter's bounds.
    /// - Returns: ``CounterStep/applied(value:)`` or ``CounterStep/refused(current:)``.
    /// - Throws: ``UnraceError/Code/notFound``; ``UnraceError/Code/invalidArgument`` for a zero
    ///   or oversized delta.
    public func adjust(_ name: String, by delta: Int64) async throws -> CounterStep {
        try Records<S>.validate(name: name, "counter name")
        guard delta != 0, delta.magnitude <= UInt64(Self.deltaMaximum) else {
            throw UnraceError(.invalidArgument, "a counter step must be non-zero and at most 2^53 in size")
        }
        let step = try await store.adjustCounter(name: name, by: delta)
        if case .notFound = step { throw UnraceError(.notFound, "there is no such counter") }
        return step
    }

    /// Consumes `units` of `limit` in the current fixed window of length `window` (a rate limit
    /// or a quota), atomically: concurrent callers can never spend more than `limit` in a window.
    public func consume(_ name: String, units: Int64 = 1, limit: Int64, window: Duration) async throws -> QuotaStep {
        try Records<S>.validate(name: name, "quota name")
        guard units >= 1, limit >= 1, units <= Self.deltaMaximum, limit <= Self.deltaMaximum else {
            throw UnraceError(.invalidArgument, "units and limit must be between 1 and 2^53")
        }
        let length = window.wholeMilliseconds
        guard length >= 1, window <= .seconds(366 * 86_400) else {
            throw UnraceError(.invalidArgument, "a quota window must be between 1 ms and 366 days")
        }
        let now = clock.now().milliseconds
        let start = Timestamp(milliseconds: now - ((now % length) + length) % length)
        return try await store.consumeQuota(name: name, units: units, limit: limit, windowStart: start)
    }
}
