public import UnraceCore

/// A stream waiting for a missing event: what an operator sees in a gap report, and acts on
/// (wait longer, ``Inbox/skipGap(stream:_:)`` with a record, or dead-letter the stream upstream).
public struct InboxGap: Sendable, Hashable {
    /// The stream.
    public var stream: String
    /// The last applied sequence.
    public var head: Int64
    /// How many early events are parked.
    public var parked: Int
    /// When the current gap opened: the stream's last move with events still parked (applied in
    /// order or drained alike), or its first early event. A stream that keeps moving is never an
    /// old gap, however long one far-early event stays parked.
    public var since: Timestamp

    /// The sequence the stream waits for (`Int64.max` for a head already there, which a stream
    /// never reaches: only a value built by hand can).
    public var waitingFor: Int64 { head == .max ? .max : head + 1 }

    /// Creates a report entry.
    public init(stream: String, head: Int64, parked: Int, since: Timestamp) {
        self.stream = stream
        self.head = head
        self.parked = parked
        self.since = since
    }
}
