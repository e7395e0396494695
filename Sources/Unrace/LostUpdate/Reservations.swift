public import UnraceCore

/// Reservations of seats, stock and quotas: hold units for a time-to-live under a key, then
/// confirm or release them; an expired hold gives its units back.
///
/// Built on a table of its own rather than on the ledger's pending transfers: a hold needs a
/// capacity check and an expiry per resource, not double-entry accounts, and a seat is simply a
/// resource of capacity 1 — so it is held by at most one holder.
///
/// Hold keys are unique across resources: a key names one hold. Expiry is decided on the store's
/// clock (the database's on PostgreSQL).
public struct Reservations<S: Store>: Sendable {
    /// The longest time-to-live accepted: 7 days.
    public static var timeToLiveMaximum: Duration { .seconds(7 * 86_400) }

    /// The store the holds live in.
    public let store: S
    let clock: any WallClock
    let telemetry: Telemetry

    /// Creates the API over a store.
    public init(store: S, clock: any WallClock = SystemWallClock(), observability: Observability = .init()) {
        self.store = store
        self.clock = clock
        self.telemetry = Telemetry(api: "reservations", store: store, observability: observability)
    }

    /// Creates a resource with `capacity` units (1 for a seat).
    /// - Returns: `false` if it already existed (left unchanged).
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a name that breaks
    ///   ``NameRule/resourceName`` or a capacity outside 1…2^53.
    @discardableResult
    public func createResource(_ name: String, capacity: Int64) async throws -> Bool {
        let name = try NameRule.resourceName.validate(name)
        guard capacity >= 1, capacity <= Counters<S>.deltaMaximum else {
            throw UnraceError(.invalidArgument, "capacity must be between 1 and 2^53")
        }
        return try await telemetry.step(store, StepInfo("createResource", name, clock: clock)) { context in
            guard try await context.rows.resource(name: name, lock: true) == nil else { return false }
            try await context.rows.saveResource(ResourceState(name: name, capacity: capacity, held: 0, confirmed: 0), isNew: true)
            return true
        }
    }

    /// Holds `units` of `resource` under `key` for `timeToLive`. Expired holds of the resource give
    /// their units back first; the capacity check and the hold are one step. The same `key` asked
    /// again for the same resource and units answers the hold as it stands: ``HoldStep/hold(_:)``
    /// while it is held (or confirmed), ``HoldStep/notLive(_:)`` once it expired or was released —
    /// it is never placed again, and an expired hold never reads `held`.
    /// - Returns: ``HoldStep/hold(_:)``, ``HoldStep/insufficient(available:)`` or ``HoldStep/notLive(_:)``.
    /// - Throws: ``UnraceError/Code/notFound`` for an unknown resource;
    ///   ``UnraceError/Code/holdKeyReused`` when `key` holds another resource or another number of
    ///   units; ``UnraceError/Code/invalidArgument`` for bad names, units or time-to-live.
    public func hold(_ resource: String, units: Int64 = 1, key: String, timeToLive: Duration) async throws -> HoldStep {
        try await placeHold(resource, units: units, key: key, timeToLive: timeToLive).step
    }

    /// ``hold(_:units:key:timeToLive:)``, also telling whether this call placed the hold — decided
    /// in the same step, so of concurrent calls with one key exactly one is told it placed it.
    /// - Throws: as ``hold(_:units:key:timeToLive:)``.
    public func placeHold(_ resource: String, units: Int64 = 1, key: String, timeToLive: Duration) async throws -> HoldPlacement {
        let resource = try NameRule.resourceName.validate(resource)
        let key = try NameRule.holdKey.validate(key)
        guard units >= 1, units <= Counters<S>.deltaMaximum else {
            throw UnraceError(.invalidArgument, "units must be between 1 and 2^53")
        }
        guard timeToLive.wholeMilliseconds >= 1, timeToLive <= Self.timeToLiveMaximum else {
            throw UnraceError(.invalidArgument, "a hold's time-to-live must be between 1 ms and 7 days")
        }
        let outcome = try await telemetry.step(store, StepInfo("hold", "\(resource) for \(key)", clock: clock)) { context in
            let rows = context.rows
            // The resource first, then the hold: every reservation step locks in that order.
            guard let stored = try await rows.resource(name: resource, lock: true) else {
                return (HoldPlacement(.notFound, isNew: false), "", 0)
            }
            // Read, not locked: a hold of this resource changes only under the resource's lock,
            // which this step holds, and a key never moves to another resource. Locking a hold of
            // another resource here (a reused key) would take that resource's hold before its
            // resource, against the order its own steps lock in: a deadlock with its reaper.
            let existing = try await rows.hold(key: key, lock: false)
            if let existing, !HoldRule.isRepeat(existing, resource: resource, units: units) {
                throw UnraceError(
                    .holdKeyReused,
                    "this hold key already holds another resource or another number of units; hold keys are unique across resources"
                )
            }
            let now = try await rows.now()
            let (reclaimed, released) = HoldRule.release(
                expired: try await rows.expiredHolds(resource: resource, at: now),
                of: stored,
                now: now
            )
            try await rows.saveHoldStates(released)
            if let existing {
                // Asked again: the hold as it now stands (released above if it had expired).
                if !released.isEmpty { try await rows.saveResource(reclaimed, isNew: false) }
                let current = released.first { $0.key == key } ?? existing
                let step: HoldStep = current.state == .released ? .notLive(current) : .hold(current)
                context.note("→ existing hold, \(current.state.rawValue)")
                return (HoldPlacement(step, isNew: false), "existing", released.count)
            }
            let (step, taken) = HoldRule.place(key: key, units: units, on: reclaimed, expiresAt: now + timeToLive)
            if let resource = taken ?? (released.isEmpty ? nil : reclaimed) { try await rows.saveResource(resource, isNew: false) }
            if case .hold(let hold) = step { try await rows.saveHold(hold, isNew: true) }
            context.note("→ \(step)")
            if case .insufficient = step { return (HoldPlacement(step, isNew: false), "insufficient", released.count) }
            return (HoldPlacement(step, isNew: true), "held", released.count)
        }
        let (placement, result, expired) = outcome
        if case .notFound = placement.step { throw UnraceError(.notFound, "there is no such resource") }
        telemetry.count("unrace_hold_results_total", [("result", result)])
        telemetry.count("unrace_holds_released_total", [("cause", "expired")], by: expired)
        return placement
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
        let key = try NameRule.holdKey.validate(key)
        let (step, released) = try await telemetry.step(store, StepInfo(confirm ? "confirm" : "release", key, clock: clock)) { context in
            let rows = context.rows
            // Find the resource without a lock, then lock the resource before the hold.
            guard let found = try await rows.hold(key: key, lock: false),
                let resource = try await rows.resource(name: found.resource, lock: true),
                let hold = try await rows.hold(key: key, lock: true)
            else { return (HoldStep.notFound, false) }
            let (step, settled, changed) = HoldRule.settle(hold, confirm: confirm, on: resource, now: try await rows.now())
            if let settled { try await rows.saveHold(settled, isNew: false) }
            if let changed { try await rows.saveResource(changed, isNew: false) }
            context.note("→ \(step)")
            // A live hold settled now answers `.hold`; one that had expired, `.notLive` with its units given back.
            if case .notLive = step, settled != nil { return (step, true) }
            return (step, false)
        }
        switch step {
        case .notFound: throw UnraceError(.notFound, "there is no such hold")
        case .hold: telemetry.count("unrace_hold_results_total", [("result", confirm ? "confirmed" : "released")])
        case .notLive:
            telemetry.count("unrace_hold_results_total", [("result", "not_live")])
            // Found expired and released by this call: its units went back.
            if released { telemetry.count("unrace_holds_released_total", [("cause", "expired")]) }
        case .insufficient: break
        }
        return step
    }

    /// Gives back the units of expired holds, on up to `limit` resources (1 to 10,000), in one
    /// step: what ``ExpiredHoldReaper`` runs. Each resource is locked before its holds, as in
    /// every reservation step.
    /// - Returns: how many holds were released.
    public func releaseExpiredHolds(limit: Int = 100) async throws -> Int {
        try await releaseExpiredHoldsCounted(limit: limit).holds
    }

    /// ``releaseExpiredHolds(limit:)``, with how many resources the round took: `limit` of them
    /// means more may wait (``ExpiredHoldReaper`` then runs the next round at once).
    func releaseExpiredHoldsCounted(limit: Int) async throws -> (holds: Int, resources: Int) {
        guard (1...10_000).contains(limit) else {
            throw UnraceError(.invalidArgument, "releaseExpiredHolds takes a limit of 1 to 10000 resources")
        }
        let (released, resources) = try await telemetry.step(store, StepInfo("releaseExpiredHolds", "", clock: clock)) { context in
            let rows = context.rows
            let now = try await rows.now()
            var count = 0
            let names = try await rows.resourcesWithExpiredHolds(at: now, limit: limit)
            for name in names {
                guard let resource = try await rows.resource(name: name, lock: true) else { continue }
                let (reclaimed, released) = HoldRule.release(
                    expired: try await rows.expiredHolds(resource: name, at: now),
                    of: resource,
                    now: now
                )
                try await rows.saveHoldStates(released)
                if !released.isEmpty { try await rows.saveResource(reclaimed, isNew: false) }
                count += released.count
            }
            context.note("→ released \(count)")
            return (count, names.count)
        }
        telemetry.count("unrace_holds_released_total", [("cause", "expired")], by: released)
        return (released, resources)
    }

    /// A resource as stored (capacity, held and confirmed units), or `nil`. Expired holds count as
    /// held until a hold on the resource (or ``releaseExpiredHolds(limit:)``, which
    /// ``ExpiredHoldReaper`` runs) gives their units back.
    public func resource(_ name: String) async throws -> ResourceState? {
        let name = try NameRule.resourceName.validate(name)
        return try await telemetry.step(store, StepInfo("resource", name, clock: clock, isReadOnly: true)) { context in
            try await context.rows.resource(name: name, lock: false)
        }
    }

    /// A hold as stored, or `nil`.
    public func hold(key: String) async throws -> Hold? {
        let key = try NameRule.holdKey.validate(key)
        return try await telemetry.step(store, StepInfo("holdByKey", key, clock: clock, isReadOnly: true)) { context in
            try await context.rows.hold(key: key, lock: false)
        }
    }
}
