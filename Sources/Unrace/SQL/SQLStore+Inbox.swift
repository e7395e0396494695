package import UnraceCore

/// The inbox and lifecycle steps of a SQL store, shared by SQLite and PostgreSQL: each store
/// supplies only its transaction and its row-lock clause.
package struct SQLInboxSteps: Sendable {
    package let lockClause: String
    package let dialect: SQLDialect

    package init(lockClause: String, dialect: SQLDialect) {
        self.lockClause = lockClause
        self.dialect = dialect
    }

    package func receive<T: SQLTransaction>(
        _ tx: T, _ event: InboxEvent, parkingLimit: Int, now: Timestamp,
        _ handler: (T, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        try await InboxFlow.receive(SQLInboxRows(tx, dialect: dialect), event, parkingLimit: parkingLimit, now: now) { try await handler(tx, $0) }
    }

    package func skipGap<T: SQLTransaction>(
        _ tx: T, stream: String, now: Timestamp, _ handler: (T, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        try await InboxFlow.skipGap(SQLInboxRows(tx, dialect: dialect), stream: stream, now: now) { try await handler(tx, $0) }
    }

    package func gaps<T: SQLTransaction>(_ tx: T, openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        try await SQLInboxRows(tx, dialect: dialect).gaps(before: cutoff, limit: limit)
    }

    package func head<T: SQLTransaction>(_ tx: T, stream: String) async throws -> Int64 {
        let rows = try await tx.query("SELECT head FROM unrace_inbox_streams WHERE stream = ?", [.text(stream)])
        return rows.first?.optionalInt64("head") ?? 0
    }

    package func transition<T: SQLTransaction>(
        _ tx: T, _ lifecycle: Lifecycle, name: String, entity: String, event: String, now: Timestamp,
        _ handler: (T, Lifecycle.Decision) async throws -> Void
    ) async throws -> Lifecycle.Decision {
        let decision = try await SQLLifecycleRows(tx, lockClause: lockClause)
            .transition(lifecycle, name: name, entity: entity, event: event, now: now)
        try await handler(tx, decision)
        return decision
    }
}
