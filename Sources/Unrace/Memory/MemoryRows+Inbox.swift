import UnraceCore

extension MemoryRows: InboxRows {
    private static func position(_ stream: String, _ sequence: Int64) -> String { "\(stream)\u{0}\(sequence)" }

    func lockStream(_ stream: String, eventID: String) async throws -> (head: StreamHead, stored: InboxPosition?) {
        read { state in
            let head = state.streams[stream] ?? StreamHead(stream: stream, head: 0, parked: 0, gapSince: nil)
            let stored = state.events[eventID].map { InboxPosition(stream: $0.event.stream, sequence: $0.event.sequence) }
            return (head, stored)
        }
    }

    func storedInboxContent(eventID: String) async throws -> (type: String, payload: [UInt8])? {
        read { state in state.events[eventID].map { (type: $0.event.type, payload: $0.event.payload) } }
    }

    func storedInboxEvents(ids: [String]) async throws -> [String: (stream: String, payload: [UInt8])] {
        read { state in
            var found: [String: (stream: String, payload: [UInt8])] = [:]
            for id in ids { if let stored = state.events[id] { found[id] = (stream: stored.event.stream, payload: stored.event.payload) } }
            return found
        }
    }

    func isPositionTaken(stream: String, sequence: Int64) async throws -> Bool {
        read { $0.positions[Self.position(stream, sequence)] != nil }
    }

    func insertInboxEvent(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws {
        try read { state in
            let position = Self.position(event.stream, event.sequence)
            guard state.events[event.id] == nil, state.positions[position] == nil else {
                throw UnraceError(.constraintViolation, "an inbox event with this id or position exists")
            }
            state.events[event.id] = MemoryStore.StoredEvent(event: event, status: status, reason: reason)
            state.positions[position] = event.id
        }
    }

    func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws {
        try await insertInboxEvent(event, status: status, reason: reason, now: now)
        try await saveStream(stream)
    }

    func setInboxEventStatus(_ event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws {
        read { state in
            state.events[event.id]?.status = status
            state.events[event.id]?.reason = reason
        }
    }

    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent? {
        read { state in
            guard let id = state.positions[Self.position(stream, sequence)], let stored = state.events[id], stored.status == .parked
            else { return nil }
            return stored.event
        }
    }

    func lowestParkedSequence(stream: String) async throws -> Int64? {
        read { state in state.events.values.filter { $0.event.stream == stream && $0.status == .parked }.map(\.event.sequence).min() }
    }

    func saveStream(_ head: StreamHead) async throws { read { $0.streams[head.stream] = head } }

    func streamHead(_ stream: String) async throws -> Int64 { read { $0.streams[stream]?.head ?? 0 } }

    func inboxGaps(openedBefore cutoff: Timestamp, limit: Int) async throws -> [InboxGap] {
        read { state in
            Array(
                state.streams.values
                    .compactMap { head -> InboxGap? in
                        guard head.parked > 0, let since = head.gapSince, since <= cutoff else { return nil }
                        return InboxGap(stream: head.stream, head: head.head, parked: head.parked, since: since)
                    }
                    .sorted { ($0.since, $0.stream) < ($1.since, $1.stream) }
                    .prefix(max(0, limit))
            )
        }
    }
}
