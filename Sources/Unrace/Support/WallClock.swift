public import UnraceCore
import Foundation
import Synchronization

/// The source of "now" for leases, completion times and retention.
///
/// Injected so that tests and the simulator control time: a test moves a ``ManualWallClock``
/// past a lease instead of sleeping through it.
public protocol WallClock: Sendable {
    /// The current time.
    func now() -> Timestamp
    /// Suspends for `duration` (used only for bounded waits on another holder's outcome).
    func sleep(for duration: Duration) async throws
}

/// The system's wall clock.
///
/// Leases compare times taken on different machines when many processes share PostgreSQL:
/// keep lease durations far longer than the clock skew between them (NTP keeps it to
/// milliseconds; leases are seconds).
public struct SystemWallClock: WallClock {
    /// Creates the system clock.
    public init() {}

    /// The current time.
    public func now() -> Timestamp {
        Timestamp(milliseconds: Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down)))
    }

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

    /// Moves the clock forward.
    public func advance(by duration: Duration) {
        current.withLock { $0 = $0 + duration }
    }

    /// Suspends for `duration`.
    public func sleep(for duration: Duration) async throws {
        advance(by: duration)
        await Task.yield()
    }
}
