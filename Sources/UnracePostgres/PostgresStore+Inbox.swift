public import Unrace
public import UnraceCore

// The inbox's receive and skip steps on PostgreSQL, with the hot statements prepared (see
// `PostgresInboxRows`); every other step is `SQLStore`'s shared one.
extension PostgresStore {
    /// Receives one event in one transaction. See ``Store/receive(_:parkingLimit:now:_:)``.
    public func receive(
        _ event: InboxEvent, parkingLimit: Int, now: Timestamp,
        _ handler: (PostgresTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        try await transaction { tx in
            try await InboxFlow.receive(PostgresInboxRows(tx), event, parkingLimit: parkingLimit, now: now) { try await handler(tx, $0) }
        }
    }

    /// Skips a stream's gap and drains. See ``Store/skipGap(stream:now:_:)``.
    public func skipGap(
        stream: String, now: Timestamp, _ handler: (PostgresTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        try await transaction { tx in
            try await InboxFlow.skipGap(PostgresInboxRows(tx), stream: stream, now: now) { try await handler(tx, $0) }
        }
    }
}
