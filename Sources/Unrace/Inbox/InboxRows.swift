public import UnraceCore

/// The rows of ``Inbox``: a head per stream, and events stored, applied or parked.
///
/// One part of ``StoreRows``: read its rules there (what "lock" means, deferred writes).
public protocol InboxRows: StepTime {
    /// Locks a stream's row (creating it at head 0 if absent), and reads where the event id
    /// `eventID` was stored, if anywhere. A store may read the event id in the same statement, as
    /// of the statement's start, as long as the head it returns is read after the lock: an event
    /// stored at this position while it waited for the stream's row has moved the head past it
    /// (or, parked, is found by ``isPositionTaken(stream:sequence:)``), and the inbox then calls
    /// this again, the row now locked, to tell a redelivery from a reused id; an event stored
    /// elsewhere under this id is caught by the event id's uniqueness.
    func lockStream(_ stream: String, eventID: String) async throws -> (head: StreamHead, stored: InboxPosition?)
    /// The type and payload an event id was stored with, if it was stored: a repeat of the id
    /// is compared with them. A store that cannot say answers `nil` (nothing is compared); the
    /// default implementation does.
    func storedInboxContent(eventID: String) async throws -> (type: String, payload: [UInt8])?
    /// The stream and payload of each of these event ids that is stored (at most 1,000 ids): a
    /// queue checks the ids of messages it enqueues against the deliveries an inbox applied. A
    /// store that cannot say answers an empty dictionary; the default implementation does.
    func storedInboxEvents(ids: [String]) async throws -> [String: (stream: String, payload: [UInt8])]
    /// Whether an event is stored at this position of the stream, which is past the stream's
    /// head: the inbox asks nothing else, since every position up to the head is taken (by the
    /// events applied, rejected or skipped there, which are never deleted). Past the head every
    /// stored event is parked, so a store may answer from its parked events alone (the SQL
    /// stores index positions of parked events only).
    func isPositionTaken(stream: String, sequence: Int64) async throws -> Bool
    /// Stores an event.
    func insertInboxEvent(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws
    /// Stores many events of one status, as ``insertInboxEvent(_:status:reason:now:)`` does each: a
    /// skipped gap's markers (up to 100,000). A store should send them in a few statements, not one
    /// per event. Default: one ``insertInboxEvent(_:status:reason:now:)`` each.
    func insertInboxEvents(_ events: [InboxEvent], status: InboxEventStatus, reason: String?, now: Timestamp) async throws
    /// Stores an applied (or rejected) event and the stream's new head: the last writes of the
    /// common in-order step, which a store may send as one statement.
    func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws
    /// Changes a stored event's status.
    func setInboxEventStatus(_ event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws
    /// The parked event at exactly `sequence` of a stream, if any.
    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent?
    /// The lowest parked sequence of a stream, if any.
    func lowestParkedSequence(stream: String) async throws -> Int64?
    /// Writes a stream's head.
    func saveStream(_ head: StreamHead) async throws
    /// A stream's head, without locking (0 if absent).
    func streamHead(_ stream: String) async throws -> Int64
    /// Streams with parked events whose gap opened at or before `cutoff`, oldest first.
    func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap]
}

extension InboxRows {
    /// `nil`: a store that does not implement it compares a repeated event id by its position only.
    public func storedInboxContent(eventID: String) async throws -> (type: String, payload: [UInt8])? { nil }

    /// One ``insertInboxEvent(_:status:reason:now:)`` for each event.
    public func insertInboxEvents(_ events: [InboxEvent], status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        for event in events { try await insertInboxEvent(event, status: status, reason: reason, now: now) }
    }

    /// Empty: a store that does not implement it lets a queue enqueue again the id of a message
    /// an inbox applied once that message was purged.
    public func storedInboxEvents(ids: [String]) async throws -> [String: (stream: String, payload: [UInt8])] { [:] }
}

/// Where an inbox event id was stored.
public struct InboxPosition: Sendable, Hashable {
    /// The event's stream.
    public var stream: String
    /// The event's sequence.
    public var sequence: Int64

    /// A position.
    public init(stream: String, sequence: Int64) {
        self.stream = stream
        self.sequence = sequence
    }
}
