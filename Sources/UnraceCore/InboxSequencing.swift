/// An event delivered to an inbox: its id (unique across all streams), the stream (the aggregate,
/// such as the order) and its sequence number within that stream, counted from 1.
public struct InboxEvent: Sendable, Hashable, Codable {
    /// The longest id, stream or type, in UTF-8 bytes.
    public static let maximumNameByteCount = 255

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

    /// Validates and creates an event. The id, stream and type follow ``NameRule/eventID``,
    /// ``NameRule/stream`` and ``NameRule/eventType`` and are kept in NFC.
    /// - Throws: ``UnraceError/Code/invalidEvent``.
    public init(id: String, stream: String, sequence: Int64, type: String, payload: [UInt8] = []) throws {
        self.id = try NameRule.eventID.validate(id)
        self.stream = try NameRule.stream.validate(stream)
        self.type = try NameRule.eventType.validate(type)
        guard sequence >= 1 else { throw UnraceError(.invalidEvent, "event sequence must be 1 or more") }
        self.sequence = sequence
        self.payload = payload
    }

    private enum CodingKeys: String, CodingKey { case id, stream, sequence, type, payload }

    /// Decodes an event, validating it like ``init(id:stream:sequence:type:payload:)``.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            id: container.decode(String.self, forKey: .id), stream: container.decode(String.self, forKey: .stream),
            sequence: container.decode(Int64.self, forKey: .sequence), type: container.decode(String.self, forKey: .type),
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
