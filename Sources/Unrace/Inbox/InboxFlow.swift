package import UnraceCore

/// What a handler decided about an event it was given.
public enum InboxVerdict: Sendable, Hashable {
    /// The event was applied; its writes commit with the stream's new head.
    case applied
    /// The event is consumed but refused (an impossible move for the entity's lifecycle); the
    /// handler should not have written anything. The head still advances past it.
    case rejected(reason: String)
}

/// What ``Inbox/receive(_:_:)`` did with an event.
public enum InboxOutcome: Sendable, Hashable {
    /// Applied, followed by `drained` parked successors the event unblocked.
    case applied(drained: Int)
    /// Consumed but refused by the handler, followed by `drained` parked successors.
    case rejected(reason: String, drained: Int)
    /// Stored durably until the stream's sequence reaches it; `waitingFor` is the missing one.
    case parked(waitingFor: Int64)
    /// Already received (the same id, or another event at the same position): not applied again.
    case duplicate
    /// Its sequence is at or below the stream's head under an id never seen: an old event
    /// replayed; not applied.
    case stale(head: Int64)
}

/// One stream's position, as stored.
package struct StreamHead: Sendable {
    package var stream: String
    package var head: Int64
    package var parked: Int
    package var gapSince: Timestamp?

    package init(stream: String, head: Int64, parked: Int, gapSince: Timestamp?) {
        self.stream = stream
        self.head = head
        self.parked = parked
        self.gapSince = gapSince
    }
}

/// How an event is stored.
package enum InboxEventStatus: String, Sendable {
    case applied, rejected, parked, skipped
}

/// The rows an inbox step reads and writes, inside one transaction of some store.
package protocol InboxRows {
    /// The stream's head, created at 0 if absent, locked until the transaction ends.
    func lockStream(_ stream: String) async throws -> StreamHead
    /// Whether this id, or this (stream, sequence), was already received.
    func isTaken(_ event: InboxEvent) async throws -> Bool
    func insert(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp) async throws
    /// Records an applied (or rejected) event and saves the stream: the last writes of the
    /// common in-order step, which a store may send as one statement.
    func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws
    func setStatus(of event: InboxEvent, _ status: InboxEventStatus, reason: String?) async throws
    /// The parked event at exactly `sequence`, if any.
    func parkedEvent(stream: String, sequence: Int64) async throws -> InboxEvent?
    /// The lowest parked sequence of a stream, if any.
    func lowestParkedSequence(stream: String) async throws -> Int64?
    func save(_ head: StreamHead) async throws
}

extension InboxRows {
    package func recordApplied(_ event: InboxEvent, status: InboxEventStatus, reason: String?, now: Timestamp, stream: StreamHead) async throws {
        try await insert(event, status: status, reason: reason, now: now)
        try await save(stream)
    }
}

/// The inbox's one step, written once for every store: decide with ``SequencingDecision``, then
/// apply, drain, park or report.
package enum InboxFlow {
    package static func receive<R: InboxRows>(
        _ rows: R,
        _ event: InboxEvent,
        parkingLimit: Int,
        now: Timestamp,
        _ apply: (InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        var stream = try await rows.lockStream(event.stream)
        // Only a sequence at or below the head, or a stream with parked events, can meet a taken
        // position: in-order delivery skips this read.
        let seen = event.sequence <= stream.head || stream.parked > 0 ? try await rows.isTaken(event) : false
        switch SequencingDecision.decide(
            sequence: event.sequence, head: stream.head, seen: seen, parked: stream.parked, parkingLimit: parkingLimit
        ) {
        case .duplicate:
            return .duplicate
        case .stale(let head):
            return .stale(head: head)
        case .refuse(let parked):
            throw UnraceError(
                .parkingLimitReached,
                "the stream already parks \(parked) early events, the configured limit; deliver this one again later",
                detail: "stream \(event.stream), waiting for \(stream.head + 1)"
            )
        case .park(let waitingFor):
            try await rows.insert(event, status: .parked, reason: nil, now: now)
            stream.parked += 1
            stream.gapSince = stream.gapSince ?? now
            try await rows.save(stream)
            return .parked(waitingFor: waitingFor)
        case .apply:
            let verdict = try await apply(event)
            stream.head = event.sequence
            let drained = try await drain(rows, &stream, now: now, apply)
            try await rows.recordApplied(event, status: verdict.status, reason: verdict.reason, now: now, stream: stream)
            switch verdict {
            case .applied: return .applied(drained: drained)
            case .rejected(let reason): return .rejected(reason: reason, drained: drained)
            }
        }
    }

    /// Applies parked events that the head now reaches, in order. Returns how many.
    package static func drain<R: InboxRows>(
        _ rows: R,
        _ stream: inout StreamHead,
        now: Timestamp,
        _ apply: (InboxEvent) async throws -> InboxVerdict
    ) async throws -> Int {
        var drained = 0
        while stream.parked > 0, let next = try await rows.parkedEvent(stream: stream.stream, sequence: stream.head + 1) {
            let verdict = try await apply(next)
            try await rows.setStatus(of: next, verdict.status, reason: verdict.reason)
            stream.head = next.sequence
            stream.parked -= 1
            drained += 1
        }
        // A gap that remains is a new gap: its age counts from now.
        stream.gapSince = stream.parked > 0 ? (drained > 0 ? now : stream.gapSince) : nil
        return drained
    }

    /// Skips a stream's gap: moves the head to just before its lowest parked event, recording a
    /// `skipped` marker for each missing sequence, and drains.
    package static func skipGap<R: InboxRows>(
        _ rows: R,
        stream name: String,
        now: Timestamp,
        _ apply: (InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        var stream = try await rows.lockStream(name)
        guard stream.parked > 0, let lowest = try await rows.lowestParkedSequence(stream: name) else { return (0, 0) }
        let skipped = lowest - 1 - stream.head
        for sequence in (stream.head + 1)..<lowest {
            let marker = try InboxEvent(id: "unrace-skipped:\(name):\(sequence)", stream: name, sequence: sequence, type: "unrace.skipped")
            try await rows.insert(marker, status: .skipped, reason: "skipped by an operator", now: now)
        }
        stream.head = lowest - 1
        let drained = try await drain(rows, &stream, now: now, apply)
        try await rows.save(stream)
        return (skipped, drained)
    }
}

extension InboxVerdict {
    var status: InboxEventStatus {
        if case .rejected = self { return .rejected }
        return .applied
    }

    var reason: String? {
        if case .rejected(let reason) = self { return reason }
        return nil
    }
}
