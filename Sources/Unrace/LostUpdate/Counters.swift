public import UnraceCore

/// Bounded counters and per-window quotas: guarded atomic updates, each decided on the locked row
/// inside one step, never on an earlier read.
///
/// A naive read-modify-write of stock, seats left or a wallet balance loses updates and crosses
/// its bounds when two callers race; ``adjust(_:by:)`` checks the bound in the step that writes.
public struct Counters<S: Store>: Sendable {
    /// The largest step a single adjustment may take: 2^53.
    public static var deltaMaximum: Int64 { 1 << 53 }
    /// The longest quota window: 366 days.
    public static var windowMaximum: Duration { .seconds(366 * 86_400) }

    /// The store the counters live in.
    public let store: S
    let clock: any WallClock
    let telemetry: Telemetry

    /// Creates the API over a store.
    public init(store: S, clock: any WallClock = SystemWallClock(), observability: Observability = .init()) {
        self.store = store
        self.clock = clock
        self.telemetry = Telemetry(api: "counters", store: store, observability: observability)
    }

    /// Creates a counter with its bounds (stock: floor 0; a seat pool: floor 0, ceiling capacity).
    /// - Returns: `false` if it already existed (left unchanged).
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a name that breaks
    ///   ``NameRule/counterName`` or a value outside `floor...ceiling`.
    @discardableResult
    public func create(_ name: String, value: Int64, floor: Int64 = 0, ceiling: Int64 = .max) async throws -> Bool {
        let name = try NameRule.counterName.validate(name)
        guard floor <= value, value <= ceiling else {
            throw UnraceError(.invalidArgument, "a counter's value must lie between its floor and ceiling")
        }
        return try await telemetry.step(store, StepInfo("createCounter", name, clock: clock)) { context in
            guard try await context.rows.counter(name: name, lock: true) == nil else { return false }
            try await context.rows.saveCounter(CounterState(name: name, value: value, floor: floor, ceiling: ceiling), isNew: true)
            return true
        }
    }

    /// Adds `delta` (negative to take) if the result stays within the counter's bounds — and
    /// within `Int64`: a step that would overflow is refused like one that crosses a bound.
    /// - Returns: ``CounterStep/applied(value:)`` or ``CounterStep/refused(current:)``.
    /// - Throws: ``UnraceError/Code/notFound``; ``UnraceError/Code/invalidArgument`` for a zero
    ///   or oversized delta, or a bad name.
    public func adjust(_ name: String, by delta: Int64) async throws -> CounterStep {
        let name = try NameRule.counterName.validate(name)
        guard delta != 0, delta.magnitude <= UInt64(Self.deltaMaximum) else {
            throw UnraceError(.invalidArgument, "a counter step must be non-zero and at most 2^53 in size")
        }
        let step = try await telemetry.step(store, StepInfo("adjust", "\(name) by \(delta)", clock: clock)) { context in
            let (step, next) = CounterRule.adjust(try await context.rows.counter(name: name, lock: true), by: delta)
            if let next { try await context.rows.saveCounter(next, isNew: false) }
            context.note("→ \(step)")
            return step
        }
        switch step {
        case .notFound: throw UnraceError(.notFound, "there is no such counter")
        case .applied: telemetry.count("unrace_counter_adjustments_total", [("result", "applied")])
        case .refused: telemetry.count("unrace_counter_adjustments_total", [("result", "refused")])
        }
        return step
    }

    /// A counter as stored (value and bounds), or `nil` if there is none.
    public func counter(_ name: String) async throws -> CounterState? {
        let name = try NameRule.counterName.validate(name)
        return try await telemetry.step(store, StepInfo("counter", name, clock: clock, isReadOnly: true)) { context in
            try await context.rows.counter(name: name, lock: false)
        }
    }

    /// Consumes `units` of `limit` in the current fixed window of length `window` (a rate limit
    /// or a quota), atomically: concurrent callers can never spend more than `limit` in a window.
    ///
    /// The window is taken from the store's clock (the database's on PostgreSQL). Windows only
    /// move forward: a caller whose clock lags counts against the newer window, never resets it.
    /// A request for more than `limit` is refused in every window.
    /// - Returns: ``QuotaStep/granted(used:)`` with the window's use after the request, or
    ///   ``QuotaStep/denied(used:)`` with the current window's use.
    public func consume(_ name: String, units: Int64 = 1, limit: Int64, window: Duration) async throws -> QuotaStep {
        let name = try NameRule.quotaName.validate(name)
        guard units >= 1, limit >= 1, units <= Self.deltaMaximum, limit <= Self.deltaMaximum else {
            throw UnraceError(.invalidArgument, "units and limit must be between 1 and 2^53")
        }
        let length = window.wholeMilliseconds
        guard length >= 1, window <= Self.windowMaximum else {
            throw UnraceError(.invalidArgument, "a quota window must be between 1 ms and 366 days")
        }
        let step = try await telemetry.step(store, StepInfo("consume", "\(name) \(units)/\(limit)", clock: clock)) { context in
            let current = try await context.rows.quota(name: name, lock: true)
            let start = QuotaRule.windowStart(at: try await context.rows.now(), window: length)
            let (step, next) = QuotaRule.consume(current, name: name, units: units, limit: limit, windowStart: start)
            if let next { try await context.rows.saveQuota(next, isNew: current == nil) }
            context.note("→ \(step)")
            return step
        }
        switch step {
        case .granted: telemetry.count("unrace_quota_requests_total", [("result", "granted")])
        case .denied: telemetry.count("unrace_quota_requests_total", [("result", "denied")])
        }
        return step
    }

    /// A quota as stored (the newest window a request fell in, and its use), or `nil`.
    public func quota(_ name: String) async throws -> QuotaState? {
        let name = try NameRule.quotaName.validate(name)
        return try await telemetry.step(store, StepInfo("quota", name, clock: clock, isReadOnly: true)) { context in
            try await context.rows.quota(name: name, lock: false)
        }
    }
}
