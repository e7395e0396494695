public import CoreMetrics
public import UnraceCore

/// How a ``MessageQueue`` behaves. Every property has a documented default and bound.
public struct QueueConfiguration: Sendable {
    /// The longest visibility timeout: 12 hours.
    public static var visibilityTimeoutMaximum: Duration { .seconds(12 * 3_600) }
    /// The most attempts a message may get: 1,000.
    public static var maxAttemptsMaximum: Int { 1_000 }
    /// The largest payload: 256 KiB.
    public static var payloadByteCountMaximum: Int { 256 * 1_024 }
    /// The longest delay or backoff: 30 days.
    public static var delayMaximum: Duration { .seconds(30 * 86_400) }
    /// The most messages one enqueue, lease or purge handles: 1,000.
    public static var batchMaximum: Int { 1_000 }
    /// The longest failure reason kept; longer ones are cut: 1,024 bytes.
    public static var reasonByteCountMaximum: Int { 1_024 }

    /// How long a leased message stays invisible to other workers. A worker that has not acked
    /// by then (it crashed, stalled, or lost its connection) loses the message: it is delivered
    /// again, and the late worker's ack is refused. Default 30 s; 1 ms to 12 h.
    public var visibilityTimeout: Duration = .seconds(30)
    /// How many deliveries a message gets before it is dead-lettered: by nacks, or by leases that
    /// ran out. Default 10; 1 to ``maxAttemptsMaximum``.
    public var maxAttempts = 10
    /// The first retry's backoff after a nack; each further attempt doubles it, up to
    /// ``backoffMaximum``. Default 1 s; 0 to ``delayMaximum``.
    public var backoff: Duration = .seconds(1)
    /// The longest backoff. Default 10 min; at least ``backoff``, at most ``delayMaximum``.
    public var backoffMaximum: Duration = .seconds(600)
    /// The clock for leases and delays. On PostgreSQL a real-time clock is replaced by the
    /// database's, so workers on machines whose clocks disagree share one notion of "expired".
    /// Default: the system wall clock.
    public var clock: any WallClock = SystemWallClock()
    /// Where the queue's counters go (see the Metrics article); `nil` (the default) uses the
    /// factory `MetricsSystem` was bootstrapped with.
    public var metricsFactory: (any MetricsFactory)? = nil

    /// The all-defaults configuration.
    public init() {}
}

/// A durable at-least-once queue, and the transactional outbox that feeds it, in the store you
/// already have.
///
/// The pattern River, pgmq and Oban use on PostgreSQL, with no broker to run:
///
/// - **Outbox.** ``enqueue(_:in:)`` writes messages in your business transaction: a message
///   exists if and only if that transaction committed. Nothing is lost between "saved" and
///   "published", and nothing is published for a rolled-back write.
/// - **Lease.** ``lease(limit:worker:)`` hands each ready message to one worker for the
///   ``QueueConfiguration/visibilityTimeout`` (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so
///   workers in many processes share the work without waiting on each other).
/// - **Ack, nack, redeliver.** ``ack(_:)`` finishes a message; ``nack(_:reason:retryAfter:)``
///   schedules it again with exponential backoff; a lease that runs out makes the message
///   deliverable again. After ``QueueConfiguration/maxAttempts`` deliveries it is dead-lettered.
/// - **Fencing.** Every delivery carries its attempt number. A worker whose lease ran out and
///   whose message was delivered again cannot ack, nack or extend it: ``UnraceError/Code/fenced``.
///
/// Delivery is **at least once**, by design: a worker can finish its work and die before its
/// ack. Make handlers idempotent with ``Operations`` (a key per message or per business
/// operation) or, for messages with an ordering key, with an ``Inbox`` (``Delivery/inboxEvent(type:)``).
public struct MessageQueue<S: Store>: Sendable {
    /// The store the queue lives in.
    public let store: S
    /// The queue's name (``NameRule/queueName``).
    public let name: String
    /// The validated configuration.
    public let configuration: QueueConfiguration
    let metrics: QueueMetrics
    let telemetry: Telemetry
    /// The store's rows, which its deliveries carry (``Delivery/origin``).
    let origin: String?

    /// Opens a queue (no table is created: the store's schema has the queue's tables).
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a name that breaks
    ///   ``NameRule/queueName`` or contains `/`;
    ///   ``UnraceError/Code/invalidConfiguration`` for a setting out of bounds.
    /// - Parameter observability: where metrics, spans and logs go (``QueueConfiguration/metricsFactory``,
    ///   when set, takes precedence over its factory).
    public init(store: S, name: String, configuration: QueueConfiguration = .init(), observability: Observability = .init()) throws {
        let bounds = QueueConfiguration.self
        guard configuration.visibilityTimeout >= .milliseconds(1), configuration.visibilityTimeout <= bounds.visibilityTimeoutMaximum else {
            throw UnraceError(.invalidConfiguration, "visibilityTimeout must be between 1 ms and 12 hours")
        }
        guard (1...bounds.maxAttemptsMaximum).contains(configuration.maxAttempts) else {
            throw UnraceError(.invalidConfiguration, "maxAttempts must be between 1 and \(bounds.maxAttemptsMaximum)")
        }
        guard configuration.backoff >= .zero, configuration.backoffMaximum >= configuration.backoff,
            configuration.backoffMaximum <= bounds.delayMaximum
        else {
            throw UnraceError(.invalidConfiguration, "backoff must be between 0 and backoffMaximum, and backoffMaximum at most 30 days")
        }
        let name = try NameRule.queueName.validate(name)
        // Byte-wise: `/` followed by a combining mark is one Character, which `contains("/")` misses.
        guard !name.utf8.contains(UInt8(ascii: "/")) else {
            throw UnraceError(.invalidArgument, "queue name contains \"/\", which separates a queue from its message ids in inbox events")
        }
        self.store = store
        self.name = name
        self.configuration = configuration
        self.telemetry = Telemetry(api: "queue", store: store, observability: observability, metricsFactory: configuration.metricsFactory)
        self.metrics = QueueMetrics(telemetry: telemetry, queue: name)
        self.origin = (store as? any RowsIdentifying)?.rowsIdentity
    }

    // MARK: Consuming

    /// Leases up to `limit` messages that are visible now — ready ones, and leased ones whose
    /// lease ran out (redeliveries) — oldest first, each for the visibility timeout.
    ///
    /// A message whose lease ran out on its last attempt is dead-lettered here instead of
    /// delivered, so a call may return fewer messages than are waiting; call again.
    /// - Parameter worker: who leases (``NameRule/workerName``), kept on the message for operators.
    /// - Returns: the deliveries, possibly none.
    public func lease(limit: Int = 1, worker: String) async throws -> [Delivery] {
        guard (1...QueueConfiguration.batchMaximum).contains(limit) else {
            throw UnraceError(.invalidArgument, "lease takes a limit of 1 to \(QueueConfiguration.batchMaximum)")
        }
        let worker = try NameRule.workerName.validate(worker)
        let visibility = configuration.visibilityTimeout
        let (deliveries, deadLettered) = try await telemetry.step(store, StepInfo("lease", name, clock: configuration.clock)) { context in
            let now = try await context.rows.now()
            var deliveries: [Delivery] = []
            var deadLettered = 0
            for picked in try await context.rows.leasableQueueMessages(queue: name, at: now, limit: limit) {
                let (step, message) = QueueRule.lease(picked, worker: worker, visibility: visibility, now: now)
                switch step {
                case .deadLettered:
                    deadLettered += 1
                    context.note("\(message.id) dead-lettered")
                case .delivered:
                    deliveries.append(Delivery(message, origin: origin))
                    context.note("\(message.id) attempt \(message.attempts)")
                }
                try await context.rows.saveQueueMessage(message)
            }
            return (deliveries, deadLettered)
        }
        let redeliveries = deliveries.filter(\.isRedelivery).count
        metrics.count("unrace_queue_deliveries_total", ("delivery", "first"), by: deliveries.count - redeliveries)
        metrics.count("unrace_queue_deliveries_total", ("delivery", "redelivery"), by: redeliveries)
        metrics.count("unrace_queue_dead_lettered_total", ("cause", "lease"), by: deadLettered)
        return deliveries
    }

    /// Acknowledges a delivery: the message is done and will not be delivered again. Acking the
    /// same delivery twice is harmless. An ack after the lease ran out is still accepted as long
    /// as no other worker has leased the message since.
    /// - Throws: ``UnraceError/Code/fenced`` when the message was delivered again after this
    ///   delivery's lease ran out (or was nacked or dead-lettered): the other delivery owns it;
    ///   ``UnraceError/Code/notFound`` for a message that is not (or no longer) stored;
    ///   ``UnraceError/Code/invalidArgument`` for a delivery of another queue, or leased from a
    ///   queue of another store: another SQLite file, another memory store, or a PostgreSQL or
    ///   Fluent store of another location (the one ``Store/rows(joining:clock:)`` compares).
    ///   SQLite stores on one file, by any path, settle each other's deliveries, as do PostgreSQL
    ///   stores made from URLs of the same user, host, port, database and `search_path`.
    public func ack(_ delivery: Delivery) async throws {
        let acked = try await fencing(delivery) {
            try await telemetry.step(store, StepInfo("ack", delivery.id, clock: configuration.clock)) { context in
                try await Self.ack(delivery, queue: name, origin: origin, rows: context.rows)
            }
        }
        if acked { metrics.count("unrace_queue_acks_total") }
    }

    /// Acknowledges a delivery in a transaction the store gave you, so the handler's writes and
    /// the ack commit together: a crash after the commit cannot redeliver work that was done.
    /// - Throws: as ``ack(_:)``; ``UnraceError/Code/invalidArgument`` for a transaction of another
    ///   database or schema than the queue's store.
    public func ack(_ delivery: Delivery, in transaction: S.Transaction) async throws {
        let rows = try await store.rows(joining: transaction, clock: configuration.clock)
        if try await fencing(delivery, { try await Self.ack(delivery, queue: name, origin: origin, rows: rows) }) {
            metrics.count("unrace_queue_acks_total")
        }
    }

    /// Runs `body`, counting and logging (as a warning) a ``UnraceError/Code/fenced`` refusal.
    private func fencing<T>(_ delivery: Delivery, _ body: () async throws -> T) async throws -> T {
        do {
            return try await metrics.fencing(body)
        } catch let error as UnraceError where error.code == .fenced {
            telemetry.logger.warning(
                "queue delivery fenced: the message was delivered again",
                metadata: telemetry.keyMetadata(scope: name, key: delivery.id).merging(
                    ["queue": "\(name)", "attempt": "\(delivery.attempt)"]
                ) { $1 }
            )
            throw error
        }
    }

    /// Returns `false` for a delivery acked before (nothing written, nothing to count).
    static func ack(_ delivery: Delivery, queue: String, origin: String?, rows: any StoreRows) async throws -> Bool {
        let message = try await owned(delivery, queue: queue, origin: origin, rows: rows, allowingDone: true)
        guard let acked = QueueRule.ack(message, now: try await rows.now()) else { return false }
        try await rows.saveQueueMessage(acked)
        return true
    }

    /// Gives a delivery back: the message is delivered again after `retryAfter` (default: the
    /// configured backoff, doubled per attempt), or dead-lettered if that was its last attempt.
    /// - Parameter reason: why it failed, kept on the message (control characters become spaces;
    ///   cut at ``QueueConfiguration/reasonByteCountMaximum`` bytes). Never put secrets in it.
    /// - Throws: as ``ack(_:)``; ``UnraceError/Code/invalidArgument`` for a `retryAfter` outside
    ///   0 to 30 days.
    @discardableResult
    public func nack(_ delivery: Delivery, reason: String, retryAfter: Duration? = nil) async throws -> NackOutcome {
        if let retryAfter, retryAfter < .zero || retryAfter > QueueConfiguration.delayMaximum {
            throw UnraceError(.invalidArgument, "retryAfter must be between 0 and 30 days")
        }
        let reason = Self.cleaned(reason)
        let delay = retryAfter ?? backoff(afterAttempt: delivery.attempt)
        let outcome = try await fencing(delivery) {
            try await telemetry.step(store, StepInfo("nack", delivery.id, clock: configuration.clock)) { context in
                let owned = try await Self.owned(delivery, queue: name, origin: origin, rows: context.rows, allowingDone: false)
                let (deadLettered, message) = QueueRule.nack(owned, reason: reason, delay: delay, now: try await context.rows.now())
                try await context.rows.saveQueueMessage(message)
                return deadLettered ? NackOutcome.deadLettered : .retrying(at: message.visibleAt)
            }
        }
        metrics.count("unrace_queue_nacks_total")
        if outcome == .deadLettered { metrics.count("unrace_queue_dead_lettered_total", ("cause", "nack")) }
        return outcome
    }

    /// Extends a delivery's lease to `duration` from now (a heartbeat for long work).
    /// - Returns: the new end of the lease.
    /// - Throws: as ``ack(_:)``; ``UnraceError/Code/invalidArgument`` for a duration outside
    ///   1 ms to 12 hours.
    public func extend(_ delivery: Delivery, by duration: Duration) async throws -> Timestamp {
        guard duration >= .milliseconds(1), duration <= QueueConfiguration.visibilityTimeoutMaximum else {
            throw UnraceError(.invalidArgument, "a lease extension must be between 1 ms and 12 hours")
        }
        return try await fencing(delivery) {
            try await telemetry.step(store, StepInfo("extend", delivery.id, clock: configuration.clock)) { context in
                var message = try await Self.owned(delivery, queue: name, origin: origin, rows: context.rows, allowingDone: false)
                message.visibleAt = try await context.rows.now() + duration
                try await context.rows.saveQueueMessage(message)
                return message.visibleAt
            }
        }
    }

    /// The stored message a delivery still owns, locked; refuses a delivery that lost it.
    static func owned(
        _ delivery: Delivery,
        queue: String,
        origin: String?,
        rows: any StoreRows,
        allowingDone: Bool
    ) async throws -> QueueMessage {
        guard delivery.queue == queue else {
            throw UnraceError(.invalidArgument, "this delivery belongs to another queue")
        }
        // A store that cannot tell its rows (a wrapper of your own) is never refused for it.
        if let leasedFrom = delivery.origin, let origin, leasedFrom != origin {
            throw UnraceError(
                .invalidArgument,
                "this delivery was leased from a queue of another store (another database, schema or file): settling it here could settle another message"
            )
        }
        guard let message = try await rows.queueMessages(queue: queue, ids: [delivery.id], lock: true)[delivery.id] else {
            throw UnraceError(.notFound, "there is no such message in this queue")
        }
        guard QueueRule.owns(message, position: delivery.position, attempt: delivery.attempt, allowingDone: allowingDone) else {
            throw UnraceError(
                .fenced,
                "this delivery no longer owns the message: it was delivered again, nacked or dead-lettered",
                detail: "delivery attempt \(delivery.attempt); message attempt \(message.attempts), \(message.state.rawValue)"
            )
        }
        return message
    }

    /// The backoff after a failed attempt: ``QueueConfiguration/backoff`` × 2^(attempt − 1), at
    /// most ``QueueConfiguration/backoffMaximum``.
    public func backoff(afterAttempt attempt: Int64) -> Duration {
        QueueRule.backoff(afterAttempt: attempt, base: configuration.backoff, maximum: configuration.backoffMaximum)
    }

    static func cleaned(_ reason: String) -> String {
        QueueRule.reason(reason, byteCountMaximum: QueueConfiguration.reasonByteCountMaximum)
    }
}
