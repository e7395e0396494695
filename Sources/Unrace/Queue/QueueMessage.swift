public import UnraceCore

/// How many messages of a queue are in each state.
public struct QueueDepth: Sendable, Hashable, Codable {
    /// Waiting to be leased, including those whose delay or backoff has not passed.
    public var ready: Int
    /// Leased now, or leased with a lease that ran out and not yet leased again.
    public var leased: Int
    /// Acknowledged and not yet purged.
    public var done: Int
    /// Dead-lettered.
    public var dead: Int

    /// Counts.
    public init(ready: Int = 0, leased: Int = 0, done: Int = 0, dead: Int = 0) {
        self.ready = ready
        self.leased = leased
        self.done = done
        self.dead = dead
    }
}

/// A message to enqueue.
public struct OutgoingMessage: Sendable, Hashable {
    /// The id, unique per queue: enqueuing an id again (a retried transaction, a second outbox
    /// relay) is recognised and stores nothing more. Follows ``NameRule/messageID``.
    public var id: String
    /// The payload, at most ``QueueConfiguration/payloadByteCountMaximum`` bytes.
    public var payload: [UInt8]
    /// Messages with one ordering key get consecutive sequence numbers in enqueue order, so a
    /// consumer can apply them in order through an ``Inbox`` (``Delivery/inboxEvent(type:)``).
    public var orderingKey: String?
    /// How long after enqueueing the message becomes visible (0 to
    /// ``QueueConfiguration/delayMaximum``).
    public var delay: Duration

    /// A message.
    public init(id: String, payload: [UInt8], orderingKey: String? = nil, delay: Duration = .zero) {
        self.id = id
        self.payload = payload
        self.orderingKey = orderingKey
        self.delay = delay
    }
}

/// What enqueueing one message did.
public enum EnqueueResult: String, Sendable, Hashable, Codable {
    /// The message was stored.
    case enqueued
    /// A message with this id, payload and ordering key was already stored (in any state, until
    /// it is purged — and, with an ordering key, for as long as an inbox that received its
    /// delivery keeps the event); nothing was written.
    case alreadyEnqueued
}

/// One delivery of a message to a worker: hand it back to ``MessageQueue/ack(_:)`` or
/// ``MessageQueue/nack(_:reason:retryAfter:)``.
///
/// ``attempt`` (with ``position``) is the delivery's fencing token: attempts only grow, also
/// across a redrive, so once the lease has run out and the message was leased again, this
/// delivery's ack, nack or extension is refused with ``UnraceError/Code/fenced``. A queue of
/// another store (another file, database or schema; see ``MessageQueue/ack(_:)``) refuses it
/// with ``UnraceError/Code/invalidArgument``.
public struct Delivery: Sendable, Hashable {
    /// The queue.
    public let queue: String
    /// The message's id.
    public let id: String
    /// The payload.
    public let payload: [UInt8]
    /// The message's ordering key, if it has one.
    public let orderingKey: String?
    /// The message's sequence within its ordering key, if it has one.
    public let sequence: Int64?
    /// Which delivery this is (1 for the first): the fencing token.
    public let attempt: Int64
    /// When the lease ends unless extended: after it, the message may be delivered again.
    public let leasedUntil: Timestamp
    /// When the message was enqueued.
    public let enqueuedAt: Timestamp
    /// The reason the previous attempt failed, if it did.
    public let lastError: String?
    /// The stored message's ``UnraceCore/QueueMessage/position``: with ``attempt``, the fencing token. A
    /// message purged and enqueued again under the same id is a new message with a new position,
    /// so a delivery of the old one cannot settle it. Positions only grow; they are not dense (on
    /// PostgreSQL an enqueue rolled back still uses its number up), so compare them, never count
    /// by them.
    public let position: Int64
    /// The rows of the store whose queue leased it (``RowsIdentifying``), or `nil` for a store
    /// that cannot tell: another store's queue refuses the delivery, whose id, position and
    /// attempt may well name a message there too (another tenant's, say).
    let origin: String?

    /// Whether an earlier delivery of this message was leased before: a redelivery.
    public var isRedelivery: Bool { attempt > 1 }

    /// The delivery as an inbox event — id `$queue/id`, stream `$queue/orderingKey`, the message's
    /// sequence — so that an ``Inbox`` applies the key's messages once each and in enqueue order
    /// whatever order they are delivered in. Queues never share a stream: each numbers its keys
    /// on its own.
    ///
    /// The names are in the namespace reserved for what Unrace derives
    /// (``InboxEvent/reservedPrefix``): an event a caller builds cannot name a queue's stream or
    /// event id, so nothing but the queue's own deliveries moves the stream's head. The event
    /// remembers the message it came from; changing its id, stream or sequence afterwards makes
    /// ``Inbox/receive(_:_:)`` refuse it.
    /// - Throws: ``UnraceError/Code/invalidEvent`` for a message with no ordering key, or a type
    ///   that breaks ``NameRule/eventType``.
    public func inboxEvent(type: String) throws -> InboxEvent {
        guard let orderingKey, let sequence else {
            throw UnraceError(.invalidEvent, "only a message with an ordering key can become an inbox event")
        }
        return try InboxEvent(queue: queue, messageID: id, orderingKey: orderingKey, sequence: sequence, type: type, payload: payload)
    }

    init(_ message: QueueMessage, origin: String?) {
        self.origin = origin
        queue = message.queue
        id = message.id
        payload = message.payload
        orderingKey = message.orderingKey
        sequence = message.sequence
        attempt = message.attempts
        leasedUntil = message.visibleAt
        enqueuedAt = message.enqueuedAt
        lastError = message.lastError
        position = message.position
    }
}

/// What a nack did.
public enum NackOutcome: Sendable, Hashable {
    /// The message will be delivered again, no earlier than this time.
    case retrying(at: Timestamp)
    /// That was its last attempt: the message is dead-lettered.
    case deadLettered
}
