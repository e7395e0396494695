public import UnraceCore

/// The answer to ``Store/adjustCounter(name:by:)``.
public enum CounterStep: Sendable, Hashable {
    /// The counter moved to `value`.
    case applied(value: Int64)
    /// The move would cross the floor or the ceiling; the counter stays at `current`.
    case refused(current: Int64)
    /// There is no such counter.
    case notFound
}

/// The answer to ``Store/consumeQuota(name:units:limit:windowStart:)``.
public enum QuotaStep: Sendable, Hashable {
    /// Granted; `used` units of the window's limit are now spent.
    case granted(used: Int64)
    /// Denied; the window had `used` units spent already.
    case denied(used: Int64)
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

    /// The operation key the hold was taken under.
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
}

/// The answer to the hold steps.
public enum HoldStep: Sendable, Hashable {
    /// The hold, as it now stands (a repeated key returns the existing one).
    case hold(Hold)
    /// Not enough free units: `available` are free.
    case insufficient(available: Int64)
    /// No such resource, or no such hold.
    case notFound
    /// The hold is not live any more (it expired or was settled) and cannot be settled again.
    case notLive(Hold)
}
