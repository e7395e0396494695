/// An event delivered to an inbox: its id (unique across all streams), the stream (the aggregate,
/// such as the order) and its sequence number within that stream, counted from 1.
public struct InboxEvent: Sendable, Hashable, Codable {
    /// The longest id, stream or type, in UTF-8 bytes.
    public static let maximumNameByteCount = 255
    /// The prefix of the streams and event ids Unrace derives itself: a queue's deliveries are
    /// events `$queue/id` on streams `$queue/orderingKey`. ``init(id:stream:sequence:type:payload:)``
    /// refuses it, so no caller — and no client of a service that takes events from outside —
    /// can write into a queue's streams.
    public static let reservedPrefix = "$"

    /// Unique across all streams; a redelivery carries the same id.
    public var id: String
    /// The aggregate the event belongs to.
    public var stream: String
    /// The event's position in its stream, from 1.
    public var sequence: Int64
    /// The event type, such as `OrderCancelled`.
    public var type: String
    /// The event's body.
    public var payload: [UInt8]
    /// Where a derived event came from (a queue message), so that what reaches a store is
    /// derived again from it; `nil` for an event a caller built.
    package let origin: Origin?

    /// The source of an event Unrace derived in its reserved namespace.
    package struct Origin: Sendable, Hashable {
        /// The queue the message belongs to.
        package var queue: String
        /// The message's id.
        package var messageID: String
        /// The message's ordering key.
        package var orderingKey: String
        /// The message's sequence within its ordering key.
        package var sequence: Int64
    }

    /// The largest payload, in bytes: 1 MiB (a queue message's, at most 256 KiB, always fits).
    public static var payloadByteCountMaximum: Int { 1 << 20 }

    /// Validates and creates an event. The id, stream and type follow ``NameRule/eventID``,
    /// ``NameRule/stream`` and ``NameRule/eventType`` and are kept in NFC; the payload is at most
    /// ``payloadByteCountMaximum`` bytes.
    /// - Throws: ``UnraceError/Code/invalidEvent``.
    public init(id: String, stream: String, sequence: Int64, type: String, payload: [UInt8] = []) throws {
        self.id = try NameRule.eventID.validate(id)
        self.stream = try NameRule.stream.validate(stream)
        self.type = try NameRule.eventType.validate(type)
        guard sequence >= 1 else { throw UnraceError(.invalidEvent, "event sequence must be 1 or more") }
        self.sequence = sequence
        self.payload = try Self.checked(payload)
        self.origin = nil
    }

    private static func checked(_ payload: [UInt8]) throws -> [UInt8] {
        guard payload.count <= payloadByteCountMaximum else {
            throw UnraceError(
                .invalidEvent,
                "an event payload is \(payload.count) bytes; the maximum is \(payloadByteCountMaximum)"
            )
        }
        return payload
    }

    /// The event of a queue message's delivery: id `$queue/messageID`, stream `$queue/orderingKey`,
    /// in the reserved namespace. The parts were validated when the message was enqueued and are
    /// validated again here.
    /// - Throws: ``UnraceError/Code/invalidEvent``.
    package init(queue: String, messageID: String, orderingKey: String, sequence: Int64, type: String, payload: [UInt8]) throws {
        let origin = Origin(queue: queue, messageID: messageID, orderingKey: orderingKey, sequence: sequence)
        let (id, stream) = try Self.derivedNames(origin)
        guard sequence >= 1 else { throw UnraceError(.invalidEvent, "event sequence must be 1 or more") }
        self.id = id
        self.stream = stream
        self.sequence = sequence
        self.type = try NameRule.eventType.validate(type)
        self.payload = try Self.checked(payload)
        self.origin = origin
    }

    /// An event as a store kept it (a parked event read back, an operator's skip marker):
    /// names in the reserved namespace are accepted, as Unrace derived them.
    /// - Throws: ``UnraceError/Code/invalidEvent``.
    package init(stored id: String, stream: String, sequence: Int64, type: String, payload: [UInt8] = []) throws {
        self.id = try NameRule.eventID.validate(id, allowingReserved: true)
        self.stream = try NameRule.stream.validate(stream, allowingReserved: true)
        self.type = try NameRule.eventType.validate(type)
        guard sequence >= 1 else { throw UnraceError(.invalidEvent, "event sequence must be 1 or more") }
        self.sequence = sequence
        self.payload = payload
        self.origin = nil
    }

    /// Equal when id, stream, sequence, type and payload are: where an event came from does not
    /// make it another event.
    public static func == (lhs: InboxEvent, rhs: InboxEvent) -> Bool {
        lhs.id == rhs.id && lhs.stream == rhs.stream && lhs.sequence == rhs.sequence && lhs.type == rhs.type && lhs.payload == rhs.payload
    }

    /// Hashes what ``==`` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(id)
        hasher.combine(stream)
        hasher.combine(sequence)
        hasher.combine(type)
        hasher.combine(payload)
    }

    /// The event id and stream a queue message's deliveries have (``init(queue:messageID:orderingKey:sequence:type:payload:)``).
    /// - Throws: ``UnraceError/Code/invalidEvent``.
    package static func derivedNames(queue: String, messageID: String, orderingKey: String) throws -> (id: String, stream: String) {
        try derivedNames(Origin(queue: queue, messageID: messageID, orderingKey: orderingKey, sequence: 1))
    }

    private static func derivedNames(_ origin: Origin) throws -> (id: String, stream: String) {
        let queue = try NameRule(kind: "queue name", maximumByteCount: 64, code: .invalidEvent).validate(origin.queue)
        let id = try NameRule(kind: "message id", maximumByteCount: 190, code: .invalidEvent).validate(origin.messageID)
        let key = try NameRule(kind: "ordering key", maximumByteCount: 190, code: .invalidEvent).validate(origin.orderingKey)
        // Byte-wise, as MessageQueue checks it: `/` with a combining mark is still a `/`.
        guard !queue.utf8.contains(UInt8(ascii: "/")) else { throw UnraceError(.invalidEvent, "queue name contains \"/\"") }
        return (reservedPrefix + queue + "/" + id, reservedPrefix + queue + "/" + key)
    }

    /// The event as it may reach a store: validated again (its fields are public and mutable),
    /// and for a derived event, derived again from its origin — a derived event whose id, stream
    /// or sequence was changed afterwards is refused, and only a derived event may be in the
    /// reserved namespace.
    /// - Throws: ``UnraceError/Code/invalidEvent``.
    package func validated() throws -> InboxEvent {
        guard let origin else {
            return try InboxEvent(id: id, stream: stream, sequence: sequence, type: type, payload: payload)
        }
        let derived = try InboxEvent(
            queue: origin.queue,
            messageID: origin.messageID,
            orderingKey: origin.orderingKey,
            sequence: origin.sequence,
            type: type,
            payload: payload
        )
        guard derived.id == id, derived.stream == stream, derived.sequence == sequence else {
            throw UnraceError(
                .invalidEvent,
                "a queue delivery's event was changed after it was derived; its id, stream and sequence are the queue's"
            )
        }
        return derived
    }

    private enum CodingKeys: String, CodingKey { case id, stream, sequence, type, payload }

    /// Encodes the event's id, stream, sequence, type and payload (a derived event decodes as
    /// a caller's event, which the reserved namespace then refuses).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(stream, forKey: .stream)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(type, forKey: .type)
        try container.encode(payload, forKey: .payload)
    }

    /// Decodes an event, validating it like ``init(id:stream:sequence:type:payload:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            id: container.decode(String.self, forKey: .id),
            stream: container.decode(String.self, forKey: .stream),
            sequence: container.decode(Int64.self, forKey: .sequence),
            type: container.decode(String.self, forKey: .type),
            payload: container.decodeIfPresent([UInt8].self, forKey: .payload) ?? []
        )
    }
}

/// What an inbox does with an event, decided from the stream's head and what it has seen.
public enum SequencingDecision: Sendable, Hashable {
    /// The event is the next one: apply it (and then any parked successors).
    case apply
    /// An earlier event is missing: park this one until the gap fills.
    case park(waitingFor: Int64)
    /// The event id was already received.
    case duplicate
    /// The sequence is at or below the head, under an id never seen: an old event replayed.
    case stale(head: Int64)
    /// Parking it would exceed the stream's bound: refuse it, so it is delivered again later.
    case refuse(parked: Int)

    /// Decides. Pure: the same inputs always give the same answer.
    public static func decide(sequence: Int64, head: Int64, seen: Bool, parked: Int, parkingLimit: Int) -> SequencingDecision {
        if seen { return .duplicate }
        if sequence <= head { return .stale(head: head) }
        if sequence == head + 1 { return .apply }
        if parked >= parkingLimit { return .refuse(parked: parked) }
        return .park(waitingFor: head + 1)
    }
}
