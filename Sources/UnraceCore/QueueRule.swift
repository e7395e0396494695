/// The queue's decisions as pure rules, and the stored message they decide over: a message's
/// life (ready → leased → done, or dead after its last attempt), whether a delivery still owns
/// its message (its fencing), the backoff, and what enqueuing an id again means. `MessageQueue`
/// runs exactly these in its steps, on every store.

/// Where a queue message is in its life.
public enum QueueMessageState: String, Sendable, Hashable, CaseIterable, Codable {
    /// Waiting to be leased (now, or once its delay or backoff has passed).
    case ready
    /// Leased to a worker until its visibility timeout; leased again after it, if not acked.
    case leased
    /// Acknowledged: handled. Kept until purged, so the same id enqueued again is recognised.
    case done
    /// Dead-lettered after its last attempt; kept until redriven.
    case dead
}

/// A stored queue message: what `StoreRows` reads and writes. `QueueRule`'s rules decide
/// every change to it; `MessageQueue` runs them in its steps.
public struct QueueMessage: Sendable, Hashable {
    /// The queue the message belongs to.
    public var queue: String
    /// The message's id, unique per queue (enqueuing it again is recognised, not repeated).
    public var id: String
    /// The key whose messages are sequenced for the inbox, if any.
    public var orderingKey: String?
    /// The message's sequence among its ordering key's messages (1, 2, …), if it has a key.
    public var sequence: Int64?
    /// The payload, opaque to Unrace.
    public var payload: [UInt8]
    /// Where the message is in its life.
    public var state: QueueMessageState
    /// How many times it was leased: the fencing token of its current delivery. Never goes
    /// down, also not on a redrive.
    public var attempts: Int64
    /// The attempt after which it is dead-lettered (fixed at enqueue from the producer's
    /// `QueueConfiguration.maxAttempts`; a redrive sets it to the attempts so far plus the
    /// redriving queue's `maxAttempts`).
    public var maxAttempts: Int64
    /// When a ready message may be leased, or a leased message's lease ends.
    public var visibleAt: Timestamp
    /// The worker holding (or that last held) the lease.
    public var leasedBy: String?
    /// The reason of the last failed attempt (a nack, or a lease that ran out).
    public var lastError: String?
    /// When it was enqueued.
    public var enqueuedAt: Timestamp
    /// When it was acked or dead-lettered.
    public var completedAt: Timestamp?
    /// The store's insertion order: ties in ``visibleAt`` are leased in this order (FIFO).
    /// Assigned by the store when the message is inserted, never reused; `0` before.
    public var position: Int64

    /// A stored message.
    public init(
        queue: String,
        id: String,
        orderingKey: String?,
        sequence: Int64?,
        payload: [UInt8],
        state: QueueMessageState,
        attempts: Int64,
        maxAttempts: Int64,
        visibleAt: Timestamp,
        leasedBy: String?,
        lastError: String?,
        enqueuedAt: Timestamp,
        completedAt: Timestamp?,
        position: Int64 = 0
    ) {
        self.queue = queue
        self.id = id
        self.orderingKey = orderingKey
        self.sequence = sequence
        self.payload = payload
        self.state = state
        self.attempts = attempts
        self.maxAttempts = maxAttempts
        self.visibleAt = visibleAt
        self.leasedBy = leasedBy
        self.lastError = lastError
        self.enqueuedAt = enqueuedAt
        self.completedAt = completedAt
        self.position = position
    }
}

/// The queue's rules. Each takes the stored message (locked by the step) and the step's time,
/// and answers the message to store.
package enum QueueRule {
    /// What a lease does to a message it picked up (ready, or leased with a lease that ran out).
    package enum LeaseStep: Sendable, Hashable {
        /// Delivered again (or for the first time): one more attempt, leased until `visibility` from now.
        case delivered
        /// The lease of its last attempt ran out without an ack: dead-lettered, not delivered.
        case deadLettered
    }

    /// Leases `message` to `worker` at `now` for `visibility`.
    package static func lease(_ message: QueueMessage, worker: String, visibility: Duration, now: Timestamp) -> (LeaseStep, QueueMessage) {
        var message = message
        if message.state == .leased, message.attempts >= message.maxAttempts {
            message.state = .dead
            message.lastError = "the lease of attempt \(message.attempts) of \(message.maxAttempts) ran out without an ack"
            message.completedAt = now
            return (.deadLettered, message)
        }
        if message.state == .leased {
            message.lastError = "the lease of attempt \(message.attempts) ran out without an ack"
        }
        message.state = .leased
        message.attempts += 1
        message.visibleAt = now + visibility
        message.leasedBy = worker
        return (.delivered, message)
    }

    /// Whether the delivery of `attempt` of the message at `position` still owns `message`: the
    /// same message (not one enqueued again after a purge), its current attempt, still leased —
    /// or done, for an ack repeated (`allowingDone`). A delivery that lost it is fenced.
    package static func owns(_ message: QueueMessage, position: Int64, attempt: Int64, allowingDone: Bool) -> Bool {
        message.position == position && message.attempts == attempt
            && (message.state == .leased || (allowingDone && message.state == .done))
    }

    /// The message acked at `now`; `nil` when it already was (an ack repeated changes nothing).
    package static func ack(_ message: QueueMessage, now: Timestamp) -> QueueMessage? {
        guard message.state != .done else { return nil }
        var message = message
        message.state = .done
        message.completedAt = now
        return message
    }

    /// A failed attempt given back at `now`: ready again after `delay`, or dead-lettered when it
    /// was the last attempt. `reason` is kept as the message's last error.
    /// - Returns: whether it was dead-lettered, and the message.
    package static func nack(
        _ message: QueueMessage,
        reason: String,
        delay: Duration,
        now: Timestamp
    ) -> (deadLettered: Bool, message: QueueMessage) {
        var message = message
        message.lastError = reason
        if message.attempts >= message.maxAttempts {
            message.state = .dead
            message.completedAt = now
            return (true, message)
        }
        message.state = .ready
        message.visibleAt = now + delay
        return (false, message)
    }

    /// A dead-lettered message sent round again at `now` with `attempts` more attempts; its
    /// attempt count (the fencing token) goes on from where it was, so older deliveries stay fenced.
    package static func redrive(_ message: QueueMessage, attempts: Int64, now: Timestamp) -> QueueMessage {
        var message = message
        message.state = .ready
        let (raised, overflow) = message.attempts.addingReportingOverflow(attempts)
        message.maxAttempts = overflow ? .max : raised
        message.visibleAt = now
        message.completedAt = nil
        message.leasedBy = nil
        return message
    }

    /// The backoff after failed attempt `attempt`: `base` × 2^(attempt − 1), at most `maximum`
    /// (attempts below 1 count as 1; no overflow). Exact below a millisecond too: a 500 µs base
    /// is 512 ms at attempt 11 (a message's visibility is then kept in whole milliseconds).
    package static func backoff(afterAttempt attempt: Int64, base: Duration, maximum: Duration) -> Duration {
        let factor = Int64(1) << (attempt <= 1 ? 0 : min(attempt - 1, 40))
        // base × factor ≤ maximum exactly when base ≤ maximum / factor (rounded down): checked
        // before multiplying, so the product stays within Duration.
        guard base <= maximum / factor else { return maximum }
        return min(base * factor, maximum)
    }

    /// What enqueuing a message means, given what its id already holds.
    package enum EnqueueCheck: Sendable, Hashable {
        /// The id is new: the message is stored.
        case new
        /// The id holds the same payload and ordering key: recognised, not stored again.
        case alreadyEnqueued
        /// The id holds another payload or ordering key: refused (message ids are unique per queue).
        case idReused
    }

    /// Checks a message with `payload` and `orderingKey` against what its id holds, if anything.
    package static func enqueue(payload: [UInt8], orderingKey: String?, earlier: (payload: [UInt8], orderingKey: String?)?) -> EnqueueCheck
    {
        guard let earlier else { return .new }
        return earlier.payload == payload && earlier.orderingKey == orderingKey ? .alreadyEnqueued : .idReused
    }

    /// A failure reason as kept on a message: control characters (and whatever else a name may
    /// not hold) become spaces, cut to at most `byteCountMaximum` UTF-8 bytes on a character boundary.
    package static func reason(_ text: String, byteCountMaximum: Int) -> String {
        var text = String(String.UnicodeScalarView(text.unicodeScalars.map { NameRule.refusal($0) == nil ? $0 : " " }))
        while text.utf8.count > byteCountMaximum { text.removeLast() }
        return text
    }
}
