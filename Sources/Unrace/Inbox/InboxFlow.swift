public import UnraceCore

/// What a handler decided about an event it was given.
///
/// A rejection's reason is stored: it must be 1 to 1,000 bytes of printable UTF-8 (no NUL or
/// control characters), or the step fails with ``UnraceError/Code/invalidArgument`` and writes
/// nothing.
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
    /// Already received (the same id at the same position, or another event at the same
    /// position): not applied again.
    case duplicate
    /// Its sequence is at or below the stream's head under an id never seen: an old event
    /// replayed; not applied. Not returned today: such an event's position is always taken (by
    /// the event applied there or a skip marker), so it is answered ``duplicate``; the case
    /// stays so that the outcome's cases stay stable.
    case stale(head: Int64)
}

/// One stream's position, as stored.
public struct StreamHead: Sendable, Hashable {
    /// The stream.
    public var stream: String
    /// The last applied sequence (0 before the first).
    public var head: Int64
    /// How many early events are parked.
    public var parked: Int
    /// When the current gap opened, if the stream has one.
    public var gapSince: Timestamp?

    /// A stream's position.
    public init(stream: String, head: Int64, parked: Int, gapSince: Timestamp?) {
        self.stream = stream
        self.head = head
        self.parked = parked
        self.gapSince = gapSince
    }
}

/// How an event is stored.
public enum InboxEventStatus: String, Sendable {
    /// Applied by the handler.
    case applied
    /// Consumed, refused by the handler.
    case rejected
    /// Waiting for its turn.
    case parked
    /// A missing sequence an operator skipped.
    case skipped
}

/// The inbox's one step, written once for every store: decide with ``SequencingDecision``, then
/// apply, drain, park or report.
enum InboxFlow {
    /// An event id already stored at `stored`: a redelivery when it is at the same position
    /// with the same content, else another event under a used id (`event_id_reused`).
    static func checkRedelivery(_ event: InboxEvent, storedAt stored: InboxPosition, _ rows: any StoreRows) async throws {
        // Event ids are global: the same id at another position is not this event.
        guard stored == InboxPosition(stream: event.stream, sequence: event.sequence) else {
            throw UnraceError(
                .eventIDReused,
                "this event id was already received with another stream or sequence; event ids are unique across streams",
                detail: "stored at \(stored.stream)#\(stored.sequence)"
            )
        }
        // A redelivery carries what was stored; other content under the id is another event,
        // which a duplicate answer would drop unseen.
        if let content = try await rows.storedInboxContent(eventID: event.id),
            content.type != event.type || content.payload != event.payload
        {
            throw UnraceError(
                .eventIDReused,
                "this event id was already received with another type or payload; event ids name one event",
                detail: "stored at \(stored.stream)#\(stored.sequence)"
            )
        }
    }

    static func receive(
        _ context: StepContext<some Sendable>,
        _ event: InboxEvent,
        parkingLimit: Int,
        _ apply: (InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        let rows = context.rows
        var (stream, stored) = try await rows.lockStream(event.stream, eventID: event.id)
        let now = try await rows.now()
        if let stored {
            try await checkRedelivery(event, storedAt: stored, rows)
            return .duplicate
        }
        // Every position up to the head is taken (its event applied, rejected or skipped, and
        // never deleted), so only a stream with parked events can meet a taken position past it:
        // in-order delivery reads nothing more, and the SQL stores index parked positions only.
        var seen = event.sequence <= stream.head
        if !seen, stream.parked > 0 { seen = try await rows.isPositionTaken(stream: event.stream, sequence: event.sequence) }
        switch SequencingDecision.decide(
            sequence: event.sequence,
            head: stream.head,
            seen: seen,
            parked: stream.parked,
            parkingLimit: parkingLimit
        ) {
        case .duplicate:
            // On a store with concurrent writers the id was read as the stream's lock statement
            // began: an event received while this step waited for the stream is read now (the
            // stream's lock is this step's already), so the id at another position, or with
            // other content, is still refused rather than dropped as a duplicate.
            if let storedNow = try await rows.lockStream(event.stream, eventID: event.id).stored {
                try await checkRedelivery(event, storedAt: storedNow, rows)
            }
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
            try await rows.insertInboxEvent(event, status: .parked, reason: nil, now: now)
            stream.parked += 1
            stream.gapSince = stream.gapSince ?? now
            try await rows.saveStream(stream)
            return .parked(waitingFor: waitingFor)
        case .apply:
            let verdict = try await apply(event).checked()
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
    static func drain(
        _ rows: any StoreRows,
        _ stream: inout StreamHead,
        now: Timestamp,
        _ apply: (InboxEvent) async throws -> InboxVerdict
    ) async throws -> Int {
        var drained = 0
        while stream.parked > 0, let next = try await rows.parkedEvent(stream: stream.stream, sequence: stream.head + 1) {
            let verdict = try await apply(next).checked()
            try await rows.setInboxEventStatus(next, verdict.status, reason: verdict.reason)
            stream.head = next.sequence
            stream.parked -= 1
            drained += 1
        }
        // Every caller has just moved the head, so a gap that remains is a new one: its age counts
        // from now, whether or not a parked event was drained (a stream moving in order behind one
        // far-early event is not stuck).
        stream.gapSince = stream.parked > 0 ? now : nil
        return drained
    }

    /// The widest gap one skip closes: 100,000 missing sequences (each gets a marker row).
    static let skipMaximum: Int64 = 100_000

    /// Skips a stream's gap: moves the head to just before its lowest parked event, recording a
    /// `skipped` marker for each missing sequence, and drains.
    static func skipGap(
        _ context: StepContext<some Sendable>,
        stream name: String,
        _ apply: (InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        let rows = context.rows
        // Without a parked event there is no gap, and nothing to lock: on PostgreSQL, locking a
        // stream never seen would create it.
        guard try await rows.lowestParkedSequence(stream: name) != nil else { return (0, 0) }
        var (stream, _) = try await rows.lockStream(name, eventID: "")
        guard stream.parked > 0, let lowest = try await rows.lowestParkedSequence(stream: name) else { return (0, 0) }
        let now = try await rows.now()
        let skipped = lowest - 1 - stream.head
        guard skipped <= skipMaximum else {
            throw UnraceError(
                .invalidArgument,
                "the gap is wider than \(skipMaximum) sequences; skip it in smaller steps upstream",
                detail: "stream \(name), \(skipped) missing"
            )
        }
        // Marker ids stay short whatever the stream's length: a digest of the stream names it. They
        // are in the reserved namespace, so no caller's event id can take a marker's place.
        let streamDigest = Fingerprint.text(name).hex.prefix(32)
        let markers = try ((stream.head + 1)..<lowest).map { sequence in
            try InboxEvent(
                stored: "\(InboxEvent.reservedPrefix)skipped:\(streamDigest):\(sequence)",
                stream: name,
                sequence: sequence,
                type: "unrace.skipped"
            )
        }
        try await rows.insertInboxEvents(markers, status: .skipped, reason: "skipped by an operator", now: now)
        stream.head = lowest - 1
        let drained = try await drain(rows, &stream, now: now, apply)
        try await rows.saveStream(stream)
        return (skipped, drained)
    }
}

extension InboxVerdict {
    /// The verdict, with a rejection reason every store can store alike.
    func checked() throws -> InboxVerdict {
        guard case .rejected(let reason) = self else { return self }
        return .rejected(reason: try NameRule(kind: "rejection reason", maximumByteCount: 1_000).validate(reason))
    }

    var status: InboxEventStatus {
        if case .rejected = self { return .rejected }
        return .applied
    }

    var reason: String? {
        if case .rejected(let reason) = self { return reason }
        return nil
    }
}
