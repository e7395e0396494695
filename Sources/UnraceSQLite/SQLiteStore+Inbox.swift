public import Unrace
public import UnraceCore

// The inbox and lifecycle steps: each is one transaction running the shared SQL steps.
extension SQLiteStore {
    /// Receives one event in one transaction. See ``Store/receive(_:parkingLimit:now:_:)``.
    public func receive(
        _ event: InboxEvent, parkingLimit: Int, now: Timestamp,
        _ handler: (SQLiteTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        try await transaction { tx in try await inboxSteps.receive(tx, event, parkingLimit: parkingLimit, now: now, handler) }
    }

    /// Skips a stream's gap and drains. See ``Store/skipGap(stream:now:_:)``.
    public func skipGap(
        stream: String, now: Timestamp, _ handler: (SQLiteTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        try await transaction { tx in try await inboxSteps.skipGap(tx, stream: stream, now: now, handler) }
    }

    /// Streams with a gap opened at or before `cutoff`.
    public func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        try await transaction { tx in try await inboxSteps.gaps(tx, openedBefore: cutoff, limit: limit) }
    }

    /// The last applied sequence of a stream.
    public func inboxHead(stream: String) async throws -> Int64 {
        try await transaction { tx in try await inboxSteps.head(tx, stream: stream) }
    }

    /// Applies a lifecycle event to an entity in one transaction. See ``Store/transition(_:name:entity:event:now:_:)``.
    public func transition(
        _ lifecycle: Lifecycle, name: String, entity: String, event: String, now: Timestamp,
        _ handler: (SQLiteTransaction, Lifecycle.Decision) async throws -> Void
    ) async throws -> Lifecycle.Decision {
        try await transaction { tx in
            try await inboxSteps.transition(tx, lifecycle, name: name, entity: entity, event: event, now: now, handler)
        }
    }

    var inboxSteps: SQLInboxSteps { SQLInboxSteps(lockClause: table.lockClause, dialect: .sqlite) }
}
