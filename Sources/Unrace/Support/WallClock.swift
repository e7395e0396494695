import Foundation
import Synchronization
public import UnraceCore

/// The source of "now" for leases, completion times and retention.
///
/// Injected so that tests and the simulator control time: a test moves a ``ManualWallClock``
/// past a lease instead of sleeping through it.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Timestamp
    /// Suspends for `duration` (used only for bounded waits on another holder's outcome).
    func sleep(for duration: Duration) async throws
    /// Whether this clock reads a machine's real time. A store shared by several machines
    /// (PostgreSQL) never decides a lease or an expiry on one machine's real time: it replaces
    /// such a clock with its own, read in the deciding transaction. A clock that is not real time
    /// — a test's ``ManualWallClock``, the simulator's virtual clock — is a deliberate choice, and
    /// every store decides on it as given. Default: `true`, so a clock of your own (one that wraps
    /// `Date`, say) never takes leases away from the database's clock; a test clock says `false`.
    var isRealTime: Bool { get }
}

extension WallClock {
    /// A clock of your own is taken for real time unless it says otherwise.
    public var isRealTime: Bool { true }
}

/// The system's wall clock: real time.
///
/// On PostgreSQL, leases and expiries are decided on the database's clock instead, so machines
/// whose clocks disagree still agree on every lease. SQLite and ``MemoryStore`` (one machine)
/// decide on this clock.
public struct SystemWallClock: WallClock {
    /// How far this clock reads from the system's: zero, or a skew that models a machine whose
    /// clock runs ahead or behind (tests, demos).
    public var offset: Duration

    /// Creates the system clock, optionally skewed by `offset`.
    public init(offset: Duration = .zero) { self.offset = offset }

    /// The current time.
    public func now() -> Timestamp {
        Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down))) + offset
    }

    /// `true`: a store shared by several machines replaces it with its own clock.
    public var isRealTime: Bool { true }

    /// Suspends for `duration`.
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// A clock that moves only when told to. For tests: expire a lease with ``advance(by:)``.
///
/// ``sleep(for:)`` advances the clock by the duration and yields, so bounded waits finish
/// without real time passing.
public final class ManualWallClock: WallClock {
    private let current: Mutex<Timestamp>

    /// Creates a clock showing `start`.
    public init(start: Timestamp = Timestamp(milliseconds: 1_700_000_000_000)) {
        self.current = Mutex(start)
    }

    /// The current time.
    public func now() -> Timestamp { current.withLock { $0 } }

    /// `false`: a test clock, used as given on every store (PostgreSQL included).
    public var isRealTime: Bool { false }

    /// Moves the clock by `duration`: forward, or back for a negative one (as a real clock can be
    /// stepped back).
    public func advance(by duration: Duration) {
        current.withLock { $0 = $0 + duration }
    }

    /// Suspends for `duration`.
    public func sleep(for duration: Duration) async throws {
        advance(by: duration)
        await Task.yield()
    }
}
