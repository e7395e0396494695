/// A simulated message broker for one consumer group: partitions, per-partition order,
/// at-least-once delivery with a visibility (ack) timeout, redelivery and duplicates.
///
/// - A message goes to one partition. Within a partition, messages are delivered in order:
///   the first unacknowledged message blocks the ones behind it (like a Kafka partition, or an
///   SQS FIFO message group). Partitions progress independently, so messages of one entity
///   spread over several partitions arrive reordered.
/// - A delivered message is invisible for ``visibilityTimeout``. If it is not acknowledged by
///   then, it is delivered again — possibly while the first consumer is still working on it.
///   A negative acknowledgement (``nack(_:)``) makes it visible again after ``retryDelay``.
/// - With the `duplicatePublish` fault, the producer's retried send stores a message twice.
///
/// Every interaction (``publish(_:partition:)``, ``poll()``, ``ack(_:)``, ``nack(_:)``) is one
/// scheduling point of the calling actor.
public final class Broker: @unchecked Sendable {
    /// A message: enough fields for every scenario's payload.
    public struct Message: Sendable, Hashable {
        /// The business id (operation key, event id).
        public var id: String
        /// The entity the message is about (an order stream).
        public var stream: String
        /// The position in the entity's stream (1-based), or 0.
        public var sequence: Int64
        /// What happened or what to do.
        public var type: String

        /// Creates a message.
        public init(id: String, stream: String = "", sequence: Int64 = 0, type: String = "") {
            self.id = id
            self.stream = stream
            self.sequence = sequence
            self.type = type
        }
    }

    /// One delivery of a message to a consumer.
    public struct Delivery: Sendable {
        /// The message.
        public let message: Message
        /// Where it is stored.
        public let partition: Int, offset: Int
        /// 1 for the first delivery, 2 for the first redelivery, …
        public let attempt: Int
    }

    struct Entry {
        var message: Message
        var visibleAt: Int64
        var acked = false
        var deliveries = 0
    }

    unowned(unsafe) let world: World
    @exclusivity(unchecked) private var partitions: [[Entry]]
    @exclusivity(unchecked) private var heads: [Int]
    @exclusivity(unchecked) private var unacked = 0
    /// How long a delivered message stays invisible without an ack, in virtual milliseconds.
    public var visibilityTimeout: Int64
    /// How long a nacked message waits before it is delivered again.
    public var retryDelay: Int64 = 20
    /// How many deliveries there were, redeliveries included.
    public private(set) var deliveries = 0

    /// A broker with `partitions` partitions.
    public init(world: World, partitions: Int, visibilityTimeout: Int64) {
        self.world = world
        self.partitions = Array(repeating: [], count: max(1, partitions))
        self.heads = Array(repeating: 0, count: max(1, partitions))
        self.visibilityTimeout = visibilityTimeout
    }

    /// The number of partitions.
    public var partitionCount: Int { partitions.count }

    /// Whether every stored message has been acknowledged.
    public var isDrained: Bool { unacked == 0 }

    /// Stores `message` before the run starts (the backlog), duplicating it if the run's
    /// `duplicatePublish` fault strikes. Not a scheduling point.
    public func preload(_ message: Message, partition: Int) {
        append(message, partition: partition)
    }

    /// Publishes `message` (a scheduling point of the producer).
    public func publish(_ message: Message, partition: Int) async throws {
        try await world.point(0, "publish \(message.id) to p\(partition)")
        append(message, partition: partition)
    }

    private func append(_ message: Message, partition: Int) {
        let partition = partition % partitions.count
        let now = world.scheduler.now
        partitions[partition].append(Entry(message: message, visibleAt: now))
        unacked += 1
        let duplicates = world.faults.duplicatePerMille
        if duplicates > 0, world.choices.chance(perMille: duplicates) {
            partitions[partition].append(Entry(message: message, visibleAt: now))
            unacked += 1
            world.annotate("(published twice)")
        }
    }

    /// Delivers the next message of a partition that has one ready, or `nil` (a scheduling
    /// point of the consumer). Which partition serves is a choice of the run.
    public func poll() async throws -> Delivery? {
        try await world.point(0, "poll")
        let now = world.scheduler.now
        var ready: [Int] = []
        for partition in partitions.indices {
            let head = heads[partition]
            if head < partitions[partition].count, partitions[partition][head].visibleAt <= now { ready.append(partition) }
        }
        guard !ready.isEmpty else {
            world.annotate("→ nothing ready")
            return nil
        }
        let partition = ready.count == 1 ? ready[0] : ready[world.choices.below(ready.count)]
        let offset = heads[partition]
        partitions[partition][offset].visibleAt = now + visibilityTimeout
        partitions[partition][offset].deliveries += 1
        deliveries += 1
        let entry = partitions[partition][offset]
        world.annotate("→ \(entry.message.id) (p\(partition)@\(offset), attempt \(entry.deliveries))")
        return Delivery(message: entry.message, partition: partition, offset: offset, attempt: entry.deliveries)
    }

    /// Acknowledges a delivery: the message is done (a scheduling point).
    public func ack(_ delivery: Delivery) async throws {
        try await world.point(0, "ack \(delivery.message.id)")
        guard !partitions[delivery.partition][delivery.offset].acked else { return }
        partitions[delivery.partition][delivery.offset].acked = true
        unacked -= 1
        var head = heads[delivery.partition]
        while head < partitions[delivery.partition].count, partitions[delivery.partition][head].acked { head += 1 }
        heads[delivery.partition] = head
    }

    /// Gives a delivery back: it is delivered again after ``retryDelay`` (a scheduling point).
    public func nack(_ delivery: Delivery) async throws {
        try await world.point(0, "nack \(delivery.message.id)")
        let entry = partitions[delivery.partition][delivery.offset]
        guard !entry.acked else { return }
        partitions[delivery.partition][delivery.offset].visibleAt = world.scheduler.now + retryDelay
    }

    /// How long until some partition's head becomes visible (at least 1 ms), for an idle consumer.
    public var idleWait: Int64 {
        let now = world.scheduler.now
        var earliest = Int64.max
        for partition in partitions.indices where heads[partition] < partitions[partition].count {
            earliest = min(earliest, partitions[partition][heads[partition]].visibleAt)
        }
        return earliest == .max ? 10 : max(1, earliest - now)
    }

    /// Runs a consumer as a simulated actor until the broker is drained or the run is over.
    ///
    /// The consumer polls, runs `handle` and acks; if `handle` throws, it nacks. A crash
    /// (at any scheduling point of the consumer) drops the message unacked — the broker
    /// redelivers it after the visibility timeout — and the consumer restarts after
    /// `restartDelay`. `handle` gets the consumer's incarnation (0, then 1 after a crash, …).
    public func consume(
        as name: String, restartDelay: Int64 = 50,
        _ handle: @escaping @Sendable (Delivery, Int) async throws -> Void
    ) {
        world.spawn(name) { [self] in
            var incarnation = 0
            while !isDrained, !world.isOver {
                do {
                    guard let delivery = try await poll() else {
                        try await world.point(idleWait, "idle", crashes: false)
                        continue
                    }
                    do {
                        try await handle(delivery, incarnation)
                    } catch let error where !(error is SimulatedCrash) {
                        world.annotate("✗ \(Self.describe(error))")
                        try await nack(delivery)
                        continue
                    }
                    try await ack(delivery)
                } catch is SimulatedCrash {
                    incarnation = world.restart()
                    try await world.point(restartDelay, "restart #\(incarnation)", crashes: false)
                }
            }
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? any UnraceErrorDescribing { return error.shortDescription }
        return "\(error)"
    }
}

/// Errors with a one-line form for traces.
protocol UnraceErrorDescribing {
    var shortDescription: String { get }
}
