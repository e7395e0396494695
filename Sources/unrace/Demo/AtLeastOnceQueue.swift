/// An in-process message queue with at-least-once delivery, like SQS or a Kafka consumer group
/// with late commits: a received message is hidden for the visibility timeout and delivered again
/// if it is not acknowledged in time — while the first worker may still be processing it.
actor AtLeastOnceQueue {
    enum Receive {
        /// A message to process; `attempt` counts its deliveries from 1.
        case delivery(message: Int, attempt: Int)
        /// Nothing visible now, but unacknowledged messages may reappear.
        case empty
        /// Every message was acknowledged.
        case drained
    }

    private struct Message {
        var invisibleUntil: ContinuousClock.Instant?
        var deliveries = 0
        var acked = false
    }

    private let clock = ContinuousClock()
    private let visibilityTimeout: Duration
    private var messages: [Message]
    private var unacked: Int

    /// The number of deliveries made (first deliveries and redeliveries).
    private(set) var deliveries = 0

    init(messages count: Int, visibilityTimeout: Duration) {
        self.visibilityTimeout = visibilityTimeout
        self.messages = Array(repeating: Message(), count: count)
        self.unacked = count
    }

    func receive() -> Receive {
        guard unacked > 0 else { return .drained }
        let now = clock.now
        for index in messages.indices where !messages[index].acked {
            if let hidden = messages[index].invisibleUntil, hidden > now { continue }
            messages[index].invisibleUntil = now + visibilityTimeout
            messages[index].deliveries += 1
            deliveries += 1
            return .delivery(message: index, attempt: messages[index].deliveries)
        }
        return .empty
    }

    /// Acknowledges a message. A late ack still deletes it (as SQS does with a stale receipt),
    /// but by then a redelivery may already be in another worker's hands.
    func ack(_ message: Int) {
        guard !messages[message].acked else { return }
        messages[message].acked = true
        unacked -= 1
    }
}
