import UnraceCore

/// Reservations of seats, stock and quotas: hold units for a time-to-live under an operation
/// key, then confirm or release them; an expired hold gives its units back.
///
/// Built on a table of its own rather than on the ledger's pending transfers: a hold needs a
/// capacity check and an expiry per resource, not double-entry accounts, and a seat is simply a
/// resource of capacity 1 — so it is held by at most one holder.
public struct Reservations<S: Store>: Sendable {
    /// The longest time-to-live accepted: 7 days.
    public static var timeToLiveMaximum: Duration { .seconds(7 * 86_400) }

    /// The store the holds live in.
    public let store: S
    let clock: any WallClock

    /// Creates the API over a store.
    public init(store: S, clock: any WallClock = SystemWallClock()) {
        self.store = store
        self.clock = clock
    }

    /// Creates a resource with `capacity` units (1 for a seat).
    /// - Returns: `false` if it already existed (left unchanged).
    @discardableResult
    public func createResource(_ name: String, capacity: Int64) async throws -> Bool {
        try Records<S>.validate(name: name, "resource name")
        guard capacity >= 1, capacity <= Counters<S>.deltaMaximum else {
            throw UnraceError(.invalidArgument, "capacity must be between 1 and 2^53")
        }
        return try await store.createResource(name: name, capacity: capacity)
    }

    /// Holds `units` of `resource` under `key` for `timeToLive`. The capacity check and the
    /// hold are one transaction; a repeated `key` returns the existing hold (idempotent).
    /// - Returns: ``HoldStep/hold(_:)`` or ``HoldStep/insufficient(available:)``.
    /// - Throws: ``UnraceError/Code/notFound`` for an unknown resource; ``UnraceError/Code/invalidArgument``.
    public func hold(_ resource: String, units: Int64 = 1, key: String, timeToLive: Duration) async throws -> HoldStep {
        try Records<S>.validate(name: resource, "resource name")
        try Records<S>.validate(name: key, "hold key")
        guard units >= 1, units <= Counters<S>.deltaMaximum else {
            throw UnraceError(.invalidArgument, "units must be between 1 and 2^53")
        }
        guard timeToLive.wholeMilliseconds >= 1, timeToLive <= Self.timeToLiveMaximum else {
            throw UnraceError(.invalidArgument, "a hold's time-to-live must be between 1 ms and 7 days")
        }
        let now = clock.now()
        let step = try await store.hold(resource: resource, key: key, units: units, now: now, expiresAt: now + timeToLive)
        if case .notFound = step { throw UnraceError(.notFound, "there is no such resource") }
        return step
    }

    /// Confirms a live hold: its units are taken for good.
    /// - Returns: ``HoldStep/hold(_:)`` when confirmed, ``HoldStep/notLive(_:)`` when it had
    ///   expired (its units went back) or was already settled.
    public func confirm(key: String) async throws -> HoldStep {
        try await settle(key: key, confirm: true)
    }

    /// Releases a live hold: its units go back.
    public func release(key: String) async throws -> HoldStep {
        try await settle(key: key, confirm: false)
    }

    private func settle(key: String, confirm: Bool) async throws -> HoldStep {
        try Records<S>.validate(name: key, "hold key")
        let step = try await store.settleHold(key: key, confirm: confirm, now: clock.now())
        if case .notFound = step { throw UnraceError(.notFound, "there is no such hold") }
        return step
    }
}
