import Unrace

/// A simulated message broker: topics with partitions, consumer groups, per-partition order,
/// at-least-once delivery with a visibility (ack) timeout, redelivery and duplicates.
///
/// - A topic is a set of partitions, each an append-only log. A message goes to one partition.
/// - A consumer group reads a topic from its beginning, independently of other groups; its
///   consumers compete for messages. Within a partition a group receives messages in order: the
///   first one it has not acknowledged blocks the ones behind it (like a Kafka partition, or an
///   SQS FIFO message group). Partitions progress independently, so messages of one entity
///   spread over several partitions arrive reordered.
/// - A delivered message is invisible to the group for ``visibilityTimeout``. If it is not
///   acknowledged by then, it is delivered again — possibly while the first consumer is still
///   working on it. A negative acknowledgement (``nack(_:)``) makes it visible again after
///   ``retryDelay``.
/// - With the `duplicatePublish` fault, the producer's retried send stores a message twice.
///
/// Every interaction (``publish(_:topic:partition:)``, ``poll(topic:group:)``, ``ack(_:)``,
/// ``nack(_:)``) is one scheduling point of the calling actor.
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

    /// One delivery of a message to a consumer of a group.
    public struct Delivery: Sendable {
        /// The message.
        public let message: Message
        /// The topic and the consumer group it was delivered to.
        public let topic: String, group: String
        /// Where it is stored.
        public let partition: Int, offset: Int
        /// 1 for the first delivery to the group, 2 for the first redelivery, …
        public let attempt: Int
        let groupIndex: Int
    }

    /// A group's view of one stored message.
    struct Entry {
        var visibleAt: Int64
        var acked = false
        var deliveries = 0
    }

    /// A consumer group's position in a topic.
    struct Group {
        var topic: String
        var name: String
        var entries: [[Entry]]
        var heads: [Int]
        var unacked = 0
    }

    unowned(unsafe) let world: World
    @exclusivity(unchecked) private var topics: [String: [[Message]]] = [:]
    @exclusivity(unchecked) private var groups: [Group] = []
    @exclusivity(unchecked) private var groupIndex: [String: Int] = [:]
    @exclusivity(unchecked) private var subscribers: [String: [String]] = [:]
    /// How long a delivered message stays invisible without an ack, in virtual milliseconds.
    public var visibilityTimeout: Int64
    /// How long a nacked message waits before it is delivered again.
    public var retryDelay: Int64 = 20

    /// A broker with no topics.
    public init(world: World, visibilityTimeout: Int64) {
        self.world = world
        self.visibilityTimeout = visibilityTimeout
    }

    /// Creates `topic` with `partitions` partitions (at least 1).
    public func createTopic(_ topic: String, partitions: Int) {
        precondition(topics[topic] == nil, "topic \(topic) exists")
        topics[topic] = Array(repeating: [], count: max(1, partitions))
    }

    /// Subscribes consumer group `group` to `topic`, from the topic's first message.
    public func subscribe(group: String, to topic: String) {
        guard let partitions = topics[topic] else { preconditionFailure("no topic \(topic)") }
        let now = world.scheduler.now
        let entries = partitions.map { log in log.map { _ in Entry(visibleAt: now) } }
        groupIndex[Self.key(topic, group)] = groups.count
        groups.append(
            Group(
                topic: topic,
                name: group,
                entries: entries,
                heads: Array(repeating: 0, count: partitions.count),
                unacked: entries.joined().count
            )
        )
        subscribers[topic, default: []].append(group)
    }

    /// Whether `group` has acknowledged every message of `topic`.
    public func isDrained(topic: String, group: String) -> Bool {
        groupIndex[Self.key(topic, group)].map { groups[$0].unacked == 0 } ?? true
    }

    private func index(_ topic: String, _ group: String) -> Int {
        guard let index = groupIndex[Self.key(topic, group)] else { preconditionFailure("group \(group) is not subscribed to \(topic)") }
        return index
    }

    /// Stores `message` before the run starts (the backlog), duplicating it if the run's
    /// `duplicatePublish` fault strikes. Not a scheduling point.
    public func preload(_ message: Message, topic: String, partition: Int) {
        append(message, topic: topic, partition: partition)
    }

    /// Publishes `message` (a scheduling point of the producer).
    public func publish(_ message: Message, topic: String, partition: Int) async throws {
        try await world.point(0, "publish \(message.id) to \(topic)/p\(partition)")
        append(message, topic: topic, partition: partition)
    }

    private func append(_ message: Message, topic: String, partition: Int) {
        guard let count = topics[topic]?.count else { preconditionFailure("no topic \(topic)") }
        let partition = partition % count
        let copies = world.faults.duplicatePerMille > 0 && world.choices.chance(perMille: world.faults.duplicatePerMille) ? 2 : 1
        if copies == 2 { world.annotate("(published twice)") }
        let now = world.scheduler.now
        for _ in 0..<copies {
            topics[topic]![partition].append(message)
            for group in subscribers[topic] ?? [] {
                let index = index(topic, group)
                groups[index].entries[partition].append(Entry(visibleAt: now))
                groups[index].unacked += 1
            }
        }
    }

    /// Delivers to a consumer of `group` the next message of a partition that has one ready,
    /// or `nil` (a scheduling point of the consumer). Which partition serves is a choice of the run.
    public func poll(topic: String, group: String) async throws -> Delivery? {
        try await poll(index(topic, group))
    }

    func poll(_ g: Int) async throws -> Delivery? {
        try await world.point(0, "poll \(groups[g].topic) (\(groups[g].name))")
        let topic = groups[g].topic
        let now = world.scheduler.now
        var ready: [Int] = []
        for partition in groups[g].heads.indices {
            let head = groups[g].heads[partition]
            if head < groups[g].entries[partition].count, groups[g].entries[partition][head].visibleAt <= now { ready.append(partition) }
        }
        guard !ready.isEmpty else {
            world.annotate("→ nothing ready")
            return nil
        }
        let partition = ready.count == 1 ? ready[0] : ready[world.choices.below(ready.count)]
        let offset = groups[g].heads[partition]
        groups[g].entries[partition][offset].visibleAt = now + visibilityTimeout
        groups[g].entries[partition][offset].deliveries += 1
        let attempt = groups[g].entries[partition][offset].deliveries
        let message = topics[topic]![partition][offset]
        world.annotate("→ \(message.id) (p\(partition)@\(offset), attempt \(attempt))")
        return Delivery(
            message: message,
            topic: topic,
            group: groups[g].name,
            partition: partition,
            offset: offset,
            attempt: attempt,
            groupIndex: g
        )
    }

    /// Acknowledges a delivery: the message is done for its group (a scheduling point).
    public func ack(_ delivery: Delivery) async throws {
        try await world.point(0, "ack \(delivery.message.id)")
        let group = delivery.groupIndex
        guard !groups[group].entries[delivery.partition][delivery.offset].acked else { return }
        groups[group].entries[delivery.partition][delivery.offset].acked = true
        groups[group].unacked -= 1
        var head = groups[group].heads[delivery.partition]
        while head < groups[group].entries[delivery.partition].count, groups[group].entries[delivery.partition][head].acked { head += 1 }
        groups[group].heads[delivery.partition] = head
    }

    /// Gives a delivery back: it is delivered again after ``retryDelay`` (a scheduling point).
    public func nack(_ delivery: Delivery) async throws {
        try await world.point(0, "nack \(delivery.message.id)")
        let group = delivery.groupIndex
        guard !groups[group].entries[delivery.partition][delivery.offset].acked else { return }
        groups[group].entries[delivery.partition][delivery.offset].visibleAt = world.scheduler.now + retryDelay
    }

    /// How long until one of `group`'s partition heads becomes visible (at least 1 ms).
    func idleWait(_ group: Int) -> Int64 {
        let state = groups[group]
        let now = world.scheduler.now
        var earliest = Int64.max
        for partition in state.heads.indices where state.heads[partition] < state.entries[partition].count {
            earliest = min(earliest, state.entries[partition][state.heads[partition]].visibleAt)
        }
        return earliest == .max ? 10 : max(1, earliest - now)
    }

    /// Runs a consumer of `group` on `topic` as a simulated actor, until the group has
    /// acknowledged every message or the run is over.
    ///
    /// The consumer polls, runs `handle` and acks; if `handle` throws, it nacks. A crash
    /// (at any scheduling point of the consumer) drops the message unacked — the broker
    /// redelivers it after the visibility timeout — and the consumer restarts after
    /// `restartDelay`. `handle` gets the consumer's incarnation (0, then 1 after a crash, …).
    public func consume(
        as name: String,
        topic: String,
        group: String,
        restartDelay: Int64 = 50,
        _ handle: @escaping @Sendable (Delivery, Int) async throws -> Void
    ) {
        let group = index(topic, group)
        world.spawn(name) { [self] in
            var incarnation = 0
            while groups[group].unacked > 0, !world.isOver {
                do {
                    guard let delivery = try await poll(group) else {
                        try await world.point(idleWait(group), "idle", crashes: false)
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

    static func key(_ topic: String, _ group: String) -> String { "\(topic)\u{0}\(group)" }

    static func describe(_ error: any Error) -> String {
        (error as? UnraceError)?.code.rawValue ?? "\(error)"
    }
}
