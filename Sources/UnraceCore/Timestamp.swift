/// A point in time, in whole milliseconds since 1970-01-01T00:00:00Z.
///
/// The core never reads a clock: every decision takes the current time as an argument, so the
/// same decision code runs against a real clock, a test's manual clock, and the simulator's
/// virtual clock.
public struct Timestamp: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    /// Milliseconds since the Unix epoch.
    public var milliseconds: Int64

    /// Wraps milliseconds since the Unix epoch.
    public init(milliseconds: Int64) { self.milliseconds = milliseconds }

    /// Orders by value.
    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.milliseconds < rhs.milliseconds }

    /// The instant `duration` later (earlier, for a negative duration), rounded toward zero to the
    /// millisecond and saturating at the largest and smallest representable times.
    public static func + (lhs: Timestamp, rhs: Duration) -> Timestamp {
        let (sum, overflow) = lhs.milliseconds.addingReportingOverflow(rhs.wholeMilliseconds)
        guard overflow else { return Timestamp(milliseconds: sum) }
        return Timestamp(milliseconds: rhs < .zero ? .min : .max)
    }

    /// A short, log-safe text form.
    public var description: String { "\(milliseconds)ms" }

    /// The latest clock reading a step decides on: half of `Int64.max` milliseconds, about the
    /// year 146 million. Every lease, retention, timeout and backoff added to a reading up to it
    /// stays representable; past it, `reading + lease` would saturate at the largest time and a
    /// lease would end the moment it began (two holders of one key).
    public static let latestReading = Timestamp(milliseconds: Int64.max / 2)

    /// This reading, if a step may decide on it.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` past ``latestReading``.
    public func checkedReading() throws -> Timestamp {
        guard self <= Self.latestReading else {
            throw UnraceError(
                .invalidConfiguration,
                "the clock reads \(milliseconds) ms since 1970, past the latest time Unrace decides on (Timestamp.latestReading)"
            )
        }
        return self
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded toward zero and saturating — for every
    /// duration, also those past `Int64.max` seconds (whose `components` would trap).
    public var wholeMilliseconds: Int64 {
        // Compared first: within these bounds `components` cannot trap, nor the arithmetic overflow.
        if self >= .milliseconds(Int64.max) { return .max }
        if self <= .milliseconds(Int64.min) { return .min }
        let (seconds, attoseconds) = components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
