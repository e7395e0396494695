public import CoreMetrics
public import UnraceCore

/// How an ``Inbox`` behaves. Every property has a documented default and bound.
public struct InboxConfiguration: Sendable {
    /// The largest parking limit accepted: 100,000 events per stream.
    public static var parkingLimitMaximum: Int { 100_000 }

    /// How many early events one stream may park. Past it, ``Inbox/receive(_:_:)`` throws
    /// ``UnraceError/Code/parkingLimitReached`` and stores nothing, so the caller does not ack and
    /// the event comes back later. Default 1,000; 1 to ``parkingLimitMaximum``.
    public var parkingLimit = 1_000
    /// How old a gap must be before ``Inbox/gaps(limit:)`` reports it. Default 60 s; 0 to 30 days.
    public var gapTimeout: Duration = .seconds(60)
    /// The clock for parking times and gap ages. Default: the system wall clock.
    public var clock: any WallClock = SystemWallClock()
    /// Where the inbox's counters go (see the Metrics article); `nil` (the default) uses the
    /// factory `MetricsSystem` was bootstrapped with.
    public var metricsFactory: (any MetricsFactory)? = nil

    /// The all-defaults configuration.
    public init() {}
}

/// An ordered inbox per stream: the fix for out-of-order events.
///
/// OrderCancelled can arrive before OrderCreated; Kafka orders only within a partition. The inbox
/// applies each stream's events strictly in sequence order, whatever order they arrive in:
///
/// - each event id is applied at most once, and the handler's writes commit in the same
///   transaction as the stream's new head;
/// - an early event is parked durably and applied as soon as the gap fills, in order;
/// - a duplicate or stale event is reported, never re-applied;
/// - parking is bounded per stream: past the bound the event is refused with a typed error and
///   nothing is stored, so it is delivered again later — nothing is dropped;
/// - several consumers may receive events of one stream at once: the stream's row lock orders them.
public struct Inbox<S: Store>: Sendable {
    /// The store the inbox lives in.
    public let store: S
    /// The validated configuration.
    public let configuration: InboxConfiguration
    let telemetry: Telemetry

    /// Creates an inbox over a store.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` for a setting out of bounds.
    /// - Parameter observability: where metrics, spans and logs go (``InboxConfiguration/metricsFactory``,
    ///   when set, takes precedence over its factory).
    public init(store: S, configuration: InboxConfiguration = .init(), observability: Observability = .init()) throws {
        guard (1...InboxConfiguration.parkingLimitMaximum).contains(configuration.parkingLimit) else {
            throw UnraceError(.invalidConfiguration, "parkingLimit must be between 1 and \(InboxConfiguration.parkingLimitMaximum)")
        }
        guard configuration.gapTimeout >= .zero, configuration.gapTimeout <= .seconds(30 * 86_400) else {
            throw UnraceError(.invalidConfiguration, "gapTimeout must be between 0 and 30 days")
        }
        self.store = store
        self.configuration = configuration
        self.telemetry = Telemetry(api: "inbox", store: store, observability: observability, metricsFactory: configuration.metricsFactory)
    }

    /// Receives one event, applying it (and any parked successors) with `handler` when its turn
    /// has come, parking it when it is early, or reporting it when it was already received.
    ///
    /// `handler` runs inside the step's transaction, once per event id, in sequence order per
    /// stream. Acknowledge the event to the broker only after this returns.
    /// - Throws: ``UnraceError/Code/parkingLimitReached`` (do not ack);
    ///   ``UnraceError/Code/eventIDReused`` when the id was received with another stream,
    ///   sequence, type or payload — a redelivery carries the same bytes: re-encoding a payload
    ///   (a dictionary's key order) makes another event (the handler does not run — on PostgreSQL, unless the other receive was still
    ///   uncommitted: the handler may then run in an attempt that is rolled back, none of its
    ///   writes committed); ``UnraceError/Code/invalidEvent`` for an event whose
    ///   fields break their ``NameRule`` — a stream or id in the reserved namespace
    ///   (``InboxEvent/reservedPrefix``) among them, unless the event is a queue delivery's
    ///   (``Delivery/inboxEvent(type:)``) — ; store errors; or what `handler` throws (nothing is
    ///   written then).
    public func receive(
        _ event: InboxEvent,
        _ handler: (S.Transaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> InboxOutcome {
        // The fields are public and mutable: validate again what reaches the store (and derive a
        // queue delivery's names again from its message).
        let event = try event.validated()
        let limit = configuration.parkingLimit
        let outcome = try await telemetry.step(
            store,
            StepInfo("receive", "\(event.stream)#\(event.sequence) \(event.type)", clock: configuration.clock)
        ) { context in
            let outcome = try await InboxFlow.receive(context, event, parkingLimit: limit) { try await handler(context.transaction, $0) }
            context.note("→ \(outcome)")
            return outcome
        }
        count(outcome)
        return outcome
    }

    /// Counts a committed outcome: `unrace_inbox_events_total{store, verdict}` and, for parked
    /// events applied when their gap filled (here or by ``skipGap(stream:_:)``), `unrace_inbox_drained_total{store}`. Never a stream,
    /// an event id or a payload.
    private func count(_ outcome: InboxOutcome) {
        let (verdict, drained): (String, Int) =
            switch outcome {
            case .applied(let drained): ("applied", drained)
            case .rejected(_, let drained): ("rejected", drained)
            case .parked: ("parked", 0)
            case .duplicate: ("duplicate", 0)
            case .stale: ("stale", 0)
            }
        telemetry.count("unrace_inbox_events_total", [("verdict", verdict)])
        telemetry.count("unrace_inbox_drained_total", by: drained)
    }

    /// Streams whose gap is older than ``InboxConfiguration/gapTimeout``, oldest first: what an
    /// operator acts on (wait, ``skipGap(stream:_:)`` with a record, or dead-letter upstream).
    public func gaps(limit: Int = 100) async throws -> [InboxGap] {
        guard (1...10_000).contains(limit) else {
            throw UnraceError(.invalidArgument, "gap report limit must be between 1 and 10000")
        }
        let timeout = configuration.gapTimeout.wholeMilliseconds
        let gaps = try await telemetry.step(store, StepInfo("gaps", "", clock: configuration.clock, isReadOnly: true)) { context in
            let now = try await context.rows.now()
            let (cutoff, overflow) = now.milliseconds.subtractingReportingOverflow(timeout)
            // A clock so near Int64.min that the timeout reaches before it: no gap is that old.
            guard !overflow else { return [InboxGap]() }
            return try await context.rows.inboxGaps(openedBefore: Timestamp(milliseconds: cutoff), limit: limit)
        }
        telemetry.gauge("unrace_inbox_gap_streams", [], gaps.count)
        telemetry.gauge("unrace_inbox_gap_parked_events", [], gaps.reduce(0) { $0 + $1.parked })
        return gaps
    }

    /// Gives up on a stream's missing events: records each as `skipped`, moves the head past
    /// them, and applies the parked events that follow, with `handler`. An operator's action:
    /// `stream` may be one Unrace derived (a queue's, as ``gaps(limit:)`` reports it).
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a gap wider than 100,000 sequences
    ///   (nothing written).
    public func skipGap(
        stream: String,
        _ handler: (S.Transaction, InboxEvent) async throws -> InboxVerdict
    ) async throws -> (skipped: Int64, drained: Int) {
        let stream = try NameRule.stream.validate(stream, allowingReserved: true)
        let result = try await telemetry.step(store, StepInfo("skipGap", stream, clock: configuration.clock)) { context in
            try await InboxFlow.skipGap(context, stream: stream) { try await handler(context.transaction, $0) }
        }
        // The parked events it applied filled their gap too.
        telemetry.count("unrace_inbox_drained_total", by: result.drained)
        return result
    }

    /// The last applied sequence of a stream (0 before its first event); `stream` may be one
    /// Unrace derived (a queue's).
    public func head(of stream: String) async throws -> Int64 {
        let stream = try NameRule.stream.validate(stream, allowingReserved: true)
        return try await telemetry.step(store, StepInfo("head", stream, clock: configuration.clock, isReadOnly: true)) { context in
            try await context.rows.streamHead(stream)
        }
    }
}

/// A lifecycle guard for events that carry no sequence number: each event is checked against
/// the entity's stored state and the declared ``Lifecycle``, in one transaction with the
/// handler's writes.
///
/// An impossible move is rejected with a reason, never applied; an event after a terminal state
/// is absorbed and reported; a terminal event for an unseen entity (cancel before create) leaves a
/// placeholder in the terminal state, so the late create cannot resurrect it.
public struct LifecycleGuard<S: Store>: Sendable {
    /// The store states live in.
    public let store: S
    /// The declared lifecycle.
    public let lifecycle: Lifecycle
    /// The name states are stored under (one per kind of entity, such as `order`).
    public let name: String
    let clock: any WallClock
    let telemetry: Telemetry

    /// Creates a guard.
    /// - Throws: ``UnraceError/Code/invalidArgument`` for a name that breaks ``NameRule/lifecycleName``.
    public init(
        store: S,
        lifecycle: Lifecycle,
        name: String,
        clock: any WallClock = SystemWallClock(),
        observability: Observability = .init()
    ) throws {
        self.name = try NameRule.lifecycleName.validate(name)
        self.store = store
        self.lifecycle = lifecycle
        self.clock = clock
        self.telemetry = Telemetry(api: "lifecycle", store: store, observability: observability)
    }

    /// Applies `event` to `entity` and runs `handler` with the decision, in one transaction. The
    /// entity's state is locked first, so concurrent events for one entity apply one at a time.
    /// An event here has no id, so a redelivered one is not recognised: it is decided again from
    /// the state it left (usually `rejected`; a rule that loops on a state moves and runs
    /// `handler` again). Events that can arrive twice belong in an ``Inbox``, keyed by their id.
    /// - Throws: ``UnraceError/Code/invalidLifecycle`` for an event name that breaks
    ///   ``NameRule/lifecycleWord`` (as the lifecycle's own names), ``UnraceError/Code/invalidEvent``
    ///   for an entity that breaks ``NameRule/entity``; store errors; what `handler` throws
    ///   (nothing written then).
    @discardableResult
    public func apply(
        _ event: String,
        to entity: String,
        _ handler: (S.Transaction, Lifecycle.Decision) async throws -> Void = { _, _ in }
    ) async throws -> Lifecycle.Decision {
        let event = try NameRule.lifecycleWord.validate(event)
        let entity = try NameRule.entity.validate(entity)
        let lifecycle = lifecycle
        let name = name
        let decision = try await telemetry.step(store, StepInfo("transition", "\(entity) on \(event)", clock: clock)) { context in
            let current = try await context.rows.lifecycleState(lifecycle: name, entity: entity, lock: true)
            let now = try await context.rows.now()
            let decision = lifecycle.applyWithPlaceholder(event, to: current)
            if case .moved(_, let target) = decision {
                try await context.rows.saveLifecycleState(lifecycle: name, entity: entity, state: target, isNew: current == nil, now: now)
            } else if current == nil {
                try await context.rows.forgetUnseenEntity(lifecycle: name, entity: entity)
            }
            try await handler(context.transaction, decision)
            return decision
        }
        let result =
            switch decision {
            case .moved: "moved"
            case .rejected: "rejected"
            case .absorbed: "absorbed"
            }
        telemetry.count("unrace_lifecycle_events_total", [("lifecycle", name), ("decision", result)])
        return decision
    }

    /// The stored state of an entity, or `nil` if no event was applied to it.
    public func state(of entity: String) async throws -> String? {
        let entity = try NameRule.entity.validate(entity)
        let name = name
        return try await telemetry.step(store, StepInfo("lifecycleState", entity, clock: clock, isReadOnly: true)) { context in
            try await context.rows.lifecycleState(lifecycle: name, entity: entity, lock: false)
        }
    }
}
