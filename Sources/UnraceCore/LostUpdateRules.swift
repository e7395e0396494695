/// The rules of versioned records, bounded counters, quotas and holds: pure decisions over the
/// rows a step has locked. Every store runs exactly these, so memory, SQLite and PostgreSQL agree
/// on every bound, every window and every overflow.

// MARK: Versioned records

/// A versioned record as stored.
public struct StoredRecord: Sendable, Hashable {
    /// The collection it belongs to.
    public var collection: String
    /// Its id within the collection.
    public var id: String
    /// The encoded value.
    public var value: [UInt8]
    /// 1 when created, one more on every write.
    public var version: Int64
    /// When it was last written.
    public var updatedAt: Timestamp

    /// Creates a stored record.
    public init(collection: String, id: String, value: [UInt8], version: Int64, updatedAt: Timestamp) {
        self.collection = collection
        self.id = id
        self.value = value
        self.version = version
        self.updatedAt = updatedAt
    }
}

/// What a compare-and-swap decided.
public enum RecordWrite: Sendable, Hashable {
    /// The record moved to `version`.
    case written(version: Int64)
    /// The record is at `current`, not the version the writer read: nothing written.
    case conflict(current: Int64)
    /// There is no such record.
    case notFound
}

/// The compare-and-swap rule.
public enum RecordRule {
    /// Decides a write of `value` that read `expectedVersion` — or, when it is `nil`, a write
    /// over whatever version exists (the record must exist) — at `now`.
    /// - Returns: the decision, and the record to store when it is ``RecordWrite/written(version:)``.
    public static func write(
        _ current: StoredRecord?,
        value: [UInt8],
        expectedVersion: Int64?,
        now: Timestamp
    ) -> (RecordWrite, StoredRecord?) {
        guard var record = current else { return (.notFound, nil) }
        guard expectedVersion == nil || record.version == expectedVersion else { return (.conflict(current: record.version), nil) }
        // A version never wraps: at the largest one, every later write conflicts.
        let (next, overflow) = record.version.addingReportingOverflow(1)
        guard !overflow else { return (.conflict(current: record.version), nil) }
        record.value = value
        record.version = next
        record.updatedAt = now
        return (.written(version: next), record)
    }
}

// MARK: Counters

/// A bounded counter as stored.
public struct CounterState: Sendable, Hashable, Codable {
    /// Its name.
    public var name: String
    /// Its value, always within `floor...ceiling`.
    public var value: Int64
    /// The lowest value it may take.
    public var floor: Int64
    /// The highest value it may take.
    public var ceiling: Int64

    /// Creates a counter state.
    public init(name: String, value: Int64, floor: Int64, ceiling: Int64) {
        self.name = name
        self.value = value
        self.floor = floor
        self.ceiling = ceiling
    }
}

/// The answer to a counter adjustment.
public enum CounterStep: Sendable, Hashable {
    /// The counter moved to `value`.
    case applied(value: Int64)
    /// The move would cross the floor or the ceiling (or leave the 64-bit range); the counter
    /// stays at `current`.
    case refused(current: Int64)
    /// There is no such counter.
    case notFound
}

/// The bounded-counter rule.
public enum CounterRule {
    /// Adds `delta` if the result stays within the counter's bounds and the 64-bit range.
    /// - Returns: the answer, and the counter to store when applied.
    public static func adjust(_ counter: CounterState?, by delta: Int64) -> (CounterStep, CounterState?) {
        guard var counter else { return (.notFound, nil) }
        let (next, overflow) = counter.value.addingReportingOverflow(delta)
        guard !overflow, next >= counter.floor, next <= counter.ceiling else { return (.refused(current: counter.value), nil) }
        counter.value = next
        return (.applied(value: next), counter)
    }
}

// MARK: Quotas

/// A fixed-window quota as stored: the newest window seen, and the units used in it.
public struct QuotaState: Sendable, Hashable, Codable {
    /// Its name.
    public var name: String
    /// The start of the newest window a request fell in.
    public var windowStart: Timestamp
    /// Units granted in that window.
    public var used: Int64

    /// Creates a quota state.
    public init(name: String, windowStart: Timestamp, used: Int64) {
        self.name = name
        self.windowStart = windowStart
        self.used = used
    }
}

/// The answer to a quota request.
public enum QuotaStep: Sendable, Hashable {
    /// Granted; `used` units of the window's limit are now spent.
    case granted(used: Int64)
    /// Denied; `used` units of the current window were spent already.
    case denied(used: Int64)
}

/// The fixed-window quota rule.
public enum QuotaRule {
    /// The start of the window of length `window` milliseconds that `now` falls in (the earliest
    /// time there is, for a window that would start before it). A `window` of 0 or less has no
    /// length: `now` is its own window. Total over every `Int64` (callers bound the window:
    /// ``Counters``' quotas to 366 days).
    public static func windowStart(at now: Timestamp, window: Int64) -> Timestamp {
        guard window > 0 else { return now }
        // In (-window, window): adding `window` to a negative remainder cannot overflow.
        let signed = now.milliseconds % window
        let remainder = signed < 0 ? signed + window : signed
        let (start, overflow) = now.milliseconds.subtractingReportingOverflow(remainder)
        return Timestamp(milliseconds: overflow ? .min : start)
    }

    /// Decides a request for `units` of `limit` in the window starting at `windowStart`.
    ///
    /// Windows only move forward: a request whose window is older than the stored one (a caller
    /// whose clock lags) counts against the stored window, never resets it. A request for more
    /// than `limit` is refused in every window, as is one for fewer than 1 unit (it would give
    /// units back). A denial reports the units used in the window the request counts against.
    /// - Returns: the answer, and the quota to store when granted.
    public static func consume(
        _ current: QuotaState?,
        name: String,
        units: Int64,
        limit: Int64,
        windowStart: Timestamp
    ) -> (QuotaStep, QuotaState?) {
        var quota = current ?? QuotaState(name: name, windowStart: windowStart, used: 0)
        if windowStart > quota.windowStart {
            quota.windowStart = windowStart
            quota.used = 0
        }
        let (after, overflow) = quota.used.addingReportingOverflow(units)
        guard units >= 1, units <= limit, !overflow, after <= limit else { return (.denied(used: quota.used), nil) }
        quota.used = after
        return (.granted(used: after), quota)
    }
}

// MARK: Holds

/// A resource holds are taken on, as stored.
public struct ResourceState: Sendable, Hashable, Codable {
    /// Its name.
    public var name: String
    /// How many units it has.
    public var capacity: Int64
    /// Units set aside by live holds.
    public var held: Int64
    /// Units taken for good.
    public var confirmed: Int64

    /// Units neither held nor confirmed, clamped to `Int64`'s range (stored resources stay within
    /// it; only a value built by hand can reach past it).
    public var available: Int64 { Int64(clamping: Int128(capacity) - Int128(held) - Int128(confirmed)) }

    /// Creates a resource state.
    public init(name: String, capacity: Int64, held: Int64, confirmed: Int64) {
        self.name = name
        self.capacity = capacity
        self.held = held
        self.confirmed = confirmed
    }
}

/// A hold on units of a resource (a seat, stock, a quota), as stored.
public struct Hold: Sendable, Hashable, Codable {
    /// Where a hold stands.
    public enum State: String, Sendable, Hashable, Codable {
        /// The units are set aside until the hold expires.
        case held
        /// The units are taken for good.
        case confirmed
        /// The units went back: released by the holder, or expired.
        case released
    }

    /// The key the hold was taken under (unique across resources).
    public var key: String
    /// The resource held.
    public var resource: String
    /// How many units.
    public var units: Int64
    /// Where it stands.
    public var state: State
    /// When a `held` hold gives its units back.
    public var expiresAt: Timestamp

    /// Creates a hold value.
    public init(key: String, resource: String, units: Int64, state: State, expiresAt: Timestamp) {
        self.key = key
        self.resource = resource
        self.units = units
        self.state = state
        self.expiresAt = expiresAt
    }

    /// Whether the hold has run out at `now`: still `held`, and its expiry reached (exclusive).
    public func isExpired(at now: Timestamp) -> Bool { state == .held && expiresAt <= now }
}

/// What a hold request did: the answer, and whether this call placed the hold.
public struct HoldPlacement: Sendable, Hashable {
    /// The answer.
    public let step: HoldStep
    /// Whether this call placed the hold; `false` when the key already held it (or nothing was
    /// placed). Decided in the step that placed it: of concurrent requests with one key, exactly
    /// one is told it placed the hold.
    public let isNew: Bool

    /// An answer.
    public init(_ step: HoldStep, isNew: Bool) {
        self.step = step
        self.isNew = isNew
    }
}

/// The answer to the hold steps.
public enum HoldStep: Sendable, Hashable {
    /// The hold, as it now stands (a repeated key returns the existing one while it is held or
    /// confirmed).
    case hold(Hold)
    /// Not enough free units: `available` are free.
    case insufficient(available: Int64)
    /// No such resource, or no such hold.
    case notFound
    /// The hold is not live any more (it expired or was settled) and cannot be settled again; also
    /// the answer to a hold asked again under the key of one that expired or was released.
    case notLive(Hold)
}

/// The reservation rules.
public enum HoldRule {
    /// Whether a hold asked for under an existing hold's key is the same request (the same
    /// resource and units): a repeat, answered with the hold as it stands; anything else reuses
    /// the key for another hold.
    public static func isRepeat(_ existing: Hold, resource: String, units: Int64) -> Bool {
        existing.resource == resource && existing.units == units
    }

    /// Gives the units of expired holds back to their resource.
    /// - Returns: the resource and the holds, released.
    public static func release(expired holds: [Hold], of resource: ResourceState, now: Timestamp) -> (ResourceState, [Hold]) {
        var resource = resource
        var released: [Hold] = []
        for var hold in holds where hold.resource == resource.name && hold.isExpired(at: now) {
            hold.state = .released
            resource.held = resource.held.clampedSubtracting(hold.units)
            released.append(hold)
        }
        return (resource, released)
    }

    /// Takes `units` for a new hold under `key`, if the resource has them. Fewer than 1 unit is
    /// never placed (it would give units back): answered as insufficient.
    /// - Returns: the answer, and the resource to store when the hold was placed.
    public static func place(
        key: String,
        units: Int64,
        on resource: ResourceState,
        expiresAt: Timestamp
    ) -> (HoldStep, ResourceState?) {
        guard units >= 1, units <= resource.available else { return (.insufficient(available: resource.available), nil) }
        var resource = resource
        resource.held = resource.held.clampedAdding(units)
        return (.hold(Hold(key: key, resource: resource.name, units: units, state: .held, expiresAt: expiresAt)), resource)
    }

    /// Confirms or releases a hold at `now`. An expired hold is released whatever was asked.
    /// - Returns: the answer, and the hold and resource to store (none when the hold is not live).
    public static func settle(
        _ hold: Hold,
        confirm: Bool,
        on resource: ResourceState,
        now: Timestamp
    ) -> (HoldStep, Hold?, ResourceState?) {
        guard hold.state == .held else { return (.notLive(hold), nil, nil) }
        let expired = hold.isExpired(at: now)
        var hold = hold
        var resource = resource
        hold.state = confirm && !expired ? .confirmed : .released
        resource.held = resource.held.clampedSubtracting(hold.units)
        if hold.state == .confirmed { resource.confirmed = resource.confirmed.clampedAdding(hold.units) }
        return (expired ? .notLive(hold) : .hold(hold), hold, resource)
    }
}
