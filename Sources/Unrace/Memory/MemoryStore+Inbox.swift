public import UnraceCore

/// ``InboxRows`` over a ``MemoryTransaction``.
struct MemoryInboxRows: InboxRows {
    let tx: MemoryTransaction

    static func position(_ stream: String, _ sequence: Int64) -> String { "\(stream)\u{0}\(sequence)" }

    func lockStream(_ stream: String) async throws -> StreamHead {
        tx.working.withLock { $0.streams[stream] } ?? StreamHead(stream: stream, head: 0, parked: 0, gapSince: nil)
    }

    func isTaken(_ event: InboxEvent) async throws -> Bool {
        tx.working.withLock { $0.events[event.id] != nil || $0.positions[Self.position(event.stream, event.sequence)] != nil }
    }

    func insert(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try tx.working.withLock { working in
            let position = Self.position(event.stream, event.sequence)
            guard working.events[event.id] == nil, working.positions[position] == nil else {
                throw UnraceError(.constraintViolation, "an inbox event with this id or position exists")
            }
            working.events[event.id] = MemoryStore.StoredEvent(event: event, status: status, reason: reason)
            working.positions[position] = event.id
        }
    }

    func setStatus(of event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws {
        tx.working.withLock { working in
            working.events[event.id]?.status = status
            working.events[event.id]?.reason = reason
        }
    }

    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent? {
        tx.working.withLock { working in
            guard let id = working.positions[Self.position(stream, sequence)], let stored = working.events[id],
                stored.status == .parked
            else { return nil }
            return stored.event
        }
    }

    func lowestParkedSequence(stream: String) async throws -> Int64? {
        tx.working.withLock { working in
            working.events.values.filter { $0.event.stream == stream && $0.status == .parked }.map(\.event.sequence).min()
        }
    }

    func save(_ head: StreamHead) async throws {
        tx.working.withLock { $0.streams[head.stream] = head }
    }
}

extension MemoryStore {
    /// Receives one event in one step. See ``Store/receive(_:parkingLimit:now:_:)``.
    public func receive(
        _ event: InboxEvent, parkingLimit: Int, now: Timestamp,
        _ handler: (MemoryTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        try await withTransaction { tx in
            try await InboxFlow.receive(MemoryInboxRows(tx: tx), event, parkingLimit: parkingLimit, now: now) { try await handler(tx, $0) }
        }
    }

    /// Skips a stream's gap and drains. See ``Store/skipGap(stream:now:_:)``.
    public func skipGap(
        stream: String, now: Timestamp, _ handler: (MemoryTransaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        try await withTransaction { tx in
            try await InboxFlow.skipGap(MemoryInboxRows(tx: tx), stream: stream, now: now) { try await handler(tx, $0) }
        }
    }

    /// Streams with a gap opened at or before `cutoff`.
    public func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        try await withTransaction { tx in
            tx.working.withLock { working in
                working.streams.values
                    .compactMap { head -> InboxGap? in
                        guard head.parked > 0, let since = head.gapSince, since <= cutoff else { return nil }
                        return InboxGap(stream: head.stream, head: head.head, parked: head.parked, since: since)
                    }
                    .sorted { ($0.since, $0.stream) < ($1.since, $1.stream) }
                    .prefix(limit)
                    .map { $0 }
            }
        }
    }

    /// The last applied sequence of a stream.
    public func inboxHead(stream: String) async throws -> Int64 {
        try await withTransaction { tx in tx.working.withLock { $0.streams[stream]?.head ?? 0 } }
    }

    /// Applies a lifecycle event to an entity in one step. See ``Store/transition(_:name:entity:event:now:_:)``.
    public func transition(
        _ lifecycle: Lifecycle, name: String, entity: String, event: String, now: Timestamp,
        _ handler: (MemoryTransaction, Lifecycle.Decision) async throws -> Void
    ) async throws -> Lifecycle.Decision {
        try await withTransaction { tx in
            let key = "\(name)\u{0}\(entity)"
            let decision = lifecycle.applyWithPlaceholder(event, to: tx.working.withLock { $0.lifecycles[key] })
            if case .moved(_, let target) = decision { tx.working.withLock { $0.lifecycles[key] = target } }
            try await handler(tx, decision)
            return decision
        }
    }
}
