import Foundation
import Logging
import Unrace

/// Runs a workload through the public API of one store, recording every answer as text.
struct WorkloadRunner<S: Store> {
    struct BodyFailed: Error {}

    let store: S
    let scopes: [Scope] = ["w-one", "w-two"]

    func run(_ workload: Workload) async throws -> (answers: [String], state: [String]) {
        let clock = ManualWallClock(start: workload.start)
        let operations = try (0...1).map { holder in
            var configuration = OperationsConfiguration()
            configuration.clock = clock
            configuration.lease = .seconds(10)
            configuration.retention = .seconds(60)
            configuration.holder = "holder-\(holder)"
            return try Operations(
                store: store,
                configuration: configuration,
                logger: Logger(label: "differential", factory: { _ in SwiftLogNoOpLogHandler() })
            )
        }
        let records = try Records(store: store, collection: "docs", clock: clock)
        let counters = Counters(store: store, clock: clock)
        let reservations = Reservations(store: store, clock: clock)
        var ledgerConfiguration = LedgerConfiguration()
        ledgerConfiguration.clock = clock
        let ledger = try Ledger(store: store, configuration: ledgerConfiguration)
        var inboxConfiguration = InboxConfiguration()
        inboxConfiguration.clock = clock
        inboxConfiguration.parkingLimit = 3
        let inbox = try Inbox(store: store, configuration: inboxConfiguration)
        let lifecycle = try LifecycleGuard(store: store, lifecycle: OrderLifecycle.value, name: "order", clock: clock)
        var queueConfiguration = QueueConfiguration()
        queueConfiguration.clock = clock
        queueConfiguration.maxAttempts = 2
        queueConfiguration.visibilityTimeout = .seconds(10)
        queueConfiguration.backoff = .seconds(1)
        let queue = try MessageQueue(store: store, name: "wq", configuration: queueConfiguration)
        var deliveries: [Delivery] = []
        let fingerprints: [Fingerprint] = [.none, .text("one"), .text("two")]
        var handles: [OperationHandle] = []
        var answers: [String] = []

        for call in workload.calls {
            let answer: String
            do {
                switch call {
                case .advance(let milliseconds):
                    clock.advance(by: .milliseconds(milliseconds))
                    answer = "ok"
                case .perform(let key, let scope, let fingerprint, let holder, let outcome):
                    let receipt = try await operations[holder].perform(
                        key: key,
                        scope: scopes[scope],
                        fingerprint: fingerprints[fingerprint],
                        whenInProgress: .failFast
                    ) { _ -> Int in
                        guard case .value(let value) = outcome else { throw BodyFailed() }
                        return value
                    }
                    answer = "value \(receipt.value) replay \(receipt.isReplay) token \(receipt.token.value)"
                case .begin(let key, let scope, let fingerprint, let holder):
                    switch try await operations[holder].begin(key: key, scope: scopes[scope], fingerprint: fingerprints[fingerprint]) {
                    case .acquired(let handle):
                        handles.append(handle)
                        answer =
                            "acquired token \(handle.token.value) until \(handle.leaseUntil) point \(String(describing: try? handle.recoveryPoint(as: Int.self)))"
                    case .inProgress(let holder, let until): answer = "in progress \(holder) until \(until)"
                    case .completed(let done): answer = "completed \(Self.describe(done))"
                    case .fingerprintMismatch: answer = "mismatch"
                    }
                case .checkpoint(let index, let point):
                    guard handles.indices.contains(index) else {
                        answer = "no handle"
                        break
                    }
                    handles[index] = try await operations[0].checkpoint(handles[index], recoveryPoint: point)
                    answer = "checkpointed until \(handles[index].leaseUntil)"
                case .complete(let index, let value):
                    guard handles.indices.contains(index) else {
                        answer = "no handle"
                        break
                    }
                    try await operations[0].complete(handles[index], result: value)
                    answer = "completed"
                case .fail(let index, let terminal):
                    guard handles.indices.contains(index) else {
                        answer = "no handle"
                        break
                    }
                    try await operations[0].fail(handles[index], reason: terminal ? .terminal("declined") : .retryable)
                    answer = "failed"
                case .status(let key, let scope):
                    answer = Self.describe(try await operations[0].status(of: key, scope: scopes[scope]))
                case .purge(let scope, let limit):
                    answer = "purged \(try await operations[0].purgeExpired(scope: scopes[scope], limit: limit))"
                case .createRecord(let id, let value):
                    answer = "existing \(String(describing: try await records.create(id, value)))"
                case .writeRecord(let id, let value, let expected):
                    answer = "version \(try await records.write(id, value, expectedVersion: expected))"
                case .replaceRecord(let id, let value):
                    answer = "version \(try await records.replace(id, value))"
                case .readRecord(let id):
                    answer = String(describing: try await records.read(id, as: Int.self).map { "\($0.value)@\($0.version)" })
                case .createCounter(let name, let value, let floor, let ceiling):
                    answer = "created \(try await counters.create(name, value: value, floor: floor, ceiling: ceiling))"
                case .adjust(let name, let delta):
                    answer = "\(try await counters.adjust(name, by: delta))"
                case .consume(let name, let units, let limit, let window):
                    answer = "\(try await counters.consume(name, units: units, limit: limit, window: .seconds(window)))"
                case .createResource(let name, let capacity):
                    answer = "created \(try await reservations.createResource(name, capacity: capacity))"
                case .hold(let resource, let key, let units, let ttl):
                    answer = "\(try await reservations.placeHold(resource, units: units, key: key, timeToLive: .seconds(ttl)))"
                case .settle(let key, let confirm):
                    answer = "\(confirm ? try await reservations.confirm(key: key) : try await reservations.release(key: key))"
                case .createAccounts(let accounts):
                    answer = "\(try await ledger.createAccounts(accounts).map(\.self))"
                case .submit(let transfers):
                    answer = "\(try await ledger.submit(transfers).map(\.code))"
                case .voidExpired(let limit):
                    answer = "voided \(try await ledger.voidExpiredPendingTransfers(limit: limit))"
                case .receive(let spec, let verdict):
                    let event = try InboxEvent(id: spec.id, stream: spec.stream, sequence: spec.sequence, type: spec.type)
                    answer = "\(try await inbox.receive(event) { _, _ in verdict ? .applied : .rejected(reason: "no") })"
                case .skipGap(let stream):
                    let (skipped, drained) = try await inbox.skipGap(stream: stream) { _, _ in .applied }
                    answer = "skipped \(skipped) drained \(drained)"
                case .transition(let event, let entity):
                    answer = "\(try await lifecycle.apply(event, to: entity))"
                case .peek(let key, let scope, let fingerprint):
                    answer = Self.describe(
                        try await operations[0].peek(key: key, scope: scopes[scope], fingerprint: fingerprints[fingerprint])
                    )
                case .purgeEveryScope(let limit):
                    answer = "purged \(try await operations[0].purgeExpiredInEveryScope(limit: limit))"
                case .releaseExpiredHolds(let limit):
                    answer = "released \(try await reservations.releaseExpiredHolds(limit: limit))"
                case .enqueue(let specs):
                    let messages = specs.map {
                        OutgoingMessage(
                            id: $0.id,
                            payload: [UInt8($0.payload)],
                            orderingKey: $0.key,
                            delay: .milliseconds($0.delayMilliseconds)
                        )
                    }
                    answer = "\(try await queue.enqueue(messages))"
                case .lease(let limit, let worker):
                    let leased = try await queue.lease(limit: limit, worker: worker)
                    deliveries = Array((leased + deliveries).prefix(3))
                    answer = "\(leased.map(Self.describe))"
                case .ack(let index):
                    guard deliveries.indices.contains(index) else {
                        answer = "no delivery"
                        break
                    }
                    try await queue.ack(deliveries[index])
                    answer = "acked"
                case .nack(let index, let after):
                    guard deliveries.indices.contains(index) else {
                        answer = "no delivery"
                        break
                    }
                    answer =
                        "\(try await queue.nack(deliveries[index], reason: "r\u{0}\(index)", retryAfter: after.map { .milliseconds($0) }))"
                case .extend(let index, let milliseconds):
                    guard deliveries.indices.contains(index) else {
                        answer = "no delivery"
                        break
                    }
                    answer = "until \(try await queue.extend(deliveries[index], by: .milliseconds(milliseconds)))"
                case .redrive(let id):
                    try await queue.redrive(id: id)
                    answer = "redriven"
                case .deadLetters:
                    answer = "\(try await queue.deadLetters().map(Self.describe))"
                case .depth:
                    answer = "\(try await queue.depth())"
                case .purgeCompleted(let age, let limit):
                    answer = "purged \(try await queue.purgeCompleted(olderThan: .milliseconds(age), limit: limit))"
                case .receiveDelivery(let index):
                    guard deliveries.indices.contains(index) else {
                        answer = "no delivery"
                        break
                    }
                    let event = try deliveries[index].inboxEvent(type: "task")
                    answer =
                        "\(try await inbox.receive(event) { _, event in event.payload == [0] ? .applied : .rejected(reason: "payload 1") })"
                }
            } catch let error as UnraceError {
                answer = "error \(error.code)"
            } catch is BodyFailed {
                answer = "body failed"
            }
            answers.append(answer)
        }
        return (
            answers,
            try await state(
                clock: clock,
                operations: operations[0],
                records: records,
                counters: counters,
                reservations: reservations,
                ledger: ledger,
                inbox: inbox,
                lifecycle: lifecycle,
                queue: queue
            )
        )
    }

    /// Everything the workload could have changed, read back through the public API.
    func state(
        clock: ManualWallClock,
        operations: Operations<S>,
        records: Records<S>,
        counters: Counters<S>,
        reservations: Reservations<S>,
        ledger: Ledger<S>,
        inbox: Inbox<S>,
        lifecycle: LifecycleGuard<S>,
        queue: MessageQueue<S>
    ) async throws -> [String] {
        var lines: [String] = []
        // At the end of time a read the store refuses (a clock past `Timestamp.latestReading`)
        // is part of the state: every store must refuse it alike. Any other error fails the run.
        func read(_ label: String, _ body: () async throws -> String) async throws -> String {
            do { return "\(label): \(try await body())" } catch let error as UnraceError
                where error.code == .invalidConfiguration && clock.now() > Timestamp.latestReading
            {
                return "\(label): error \(error.code)"
            }
        }
        for name in Workload.validNames {
            for scope in scopes {
                lines.append(
                    try await read("operation \(scope) \(name)") { Self.describe(try await operations.status(of: name, scope: scope)) }
                )
            }
            lines.append(
                try await read("record \(name)") {
                    String(describing: try await records.read(name, as: Int.self).map { "\($0.value)@\($0.version)" })
                }
            )
            lines.append(try await read("counter \(name)") { String(describing: try await counters.counter(name)) })
            lines.append(try await read("quota \(name)") { String(describing: try await counters.quota(name)) })
            lines.append(try await read("resource \(name)") { String(describing: try await reservations.resource(name)) })
            lines.append(try await read("hold \(name)") { String(describing: try await reservations.hold(key: name)) })
            lines.append(try await read("lifecycle \(name)") { String(describing: try await lifecycle.state(of: name)) })
        }
        lines.append(try await read("accounts") { "\(try await ledger.lookupAccounts(Workload.validNames))" })
        lines.append(try await read("totals") { "\(try await ledger.totals())" })
        for stream in ["s1", "s2"] { lines.append(try await read("inbox \(stream)") { "head \(try await inbox.head(of: stream))" }) }
        lines.append(try await read("gaps") { "\(try await inbox.gaps(limit: 10))" })
        for key in ["k1", "k2"] { lines.append(try await read("queue stream \(key)") { "head \(try await inbox.head(of: "$wq/\(key)"))" }) }
        lines.append(try await read("queue depth") { "\(try await queue.depth())" })
        lines.append(try await read("dead letters") { "\(try await queue.deadLetters().map(Self.describe))" })
        // Every message that can still be delivered, and how many attempts it has left: leased
        // once more, then nacked (retried, or dead-lettered on its last attempt).
        var final: [Delivery] = []
        lines.append(
            try await read("messages") {
                final = try await queue.lease(limit: 1_000, worker: "final")
                return "\(final.map(Self.describe).sorted())"
            }
        )
        for delivery in final.sorted(by: { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }) {
            lines.append(
                try await read("last nack \(delivery.id.debugDescription)") {
                    "\(try await queue.nack(delivery, reason: "final", retryAfter: .zero))"
                }
            )
        }
        return lines
    }

    static func describe(_ delivery: Delivery) -> String {
        "\(delivery.id.debugDescription) p\(delivery.payload) k\(delivery.orderingKey ?? "-")#\(delivery.sequence ?? 0) attempt \(delivery.attempt) until \(delivery.leasedUntil) enqueued \(delivery.enqueuedAt) error \(String(describing: delivery.lastError))"
    }

    static func describe(_ message: QueueMessage) -> String {
        "\(message.id.debugDescription) \(message.state.rawValue) attempts \(message.attempts)/\(message.maxAttempts) visible \(message.visibleAt) by \(String(describing: message.leasedBy)) error \(String(describing: message.lastError)) completed \(String(describing: message.completedAt))"
    }

    static func describe(_ decision: ClaimDecision) -> String {
        switch decision {
        case .insert: "insert"
        case .takeOver(let token, let point): "take over \(token.value) point \(String(describing: point))"
        case .inProgress(let holder, let until): "in progress \(holder) until \(until)"
        case .completed(let record):
            "completed \(record.state.rawValue) \(record.token.value) \(String(decoding: record.outcome ?? [], as: UTF8.self))"
        case .fingerprintMismatch: "mismatch"
        }
    }

    static func describe(_ status: OperationStatus) -> String {
        switch status {
        case .notStarted: "not started"
        case .released: "released"
        case .inProgress(let holder, let until): "in progress \(holder) until \(until)"
        case .completed(let done): "completed \(describe(done))"
        }
    }

    static func describe(_ done: CompletedOperation) -> String {
        let record = done.record
        return
            "\(record.state.rawValue) token \(record.token.value) outcome \(String(decoding: record.outcome ?? [], as: UTF8.self)) at \(String(describing: record.completedAt)) expires \(String(describing: record.expiresAt))"
    }
}

/// The order lifecycle the workload's transitions use.
enum OrderLifecycle {
    static let value: Lifecycle = {
        do {
            return try Lifecycle(
                initial: "new",
                terminal: ["shipped", "cancelled"],
                transitions: [
                    .init(from: "new", on: "OrderCreated", to: "created"),
                    .init(from: "created", on: "PaymentCaptured", to: "paid"),
                    .init(from: "paid", on: "OrderShipped", to: "shipped"),
                    .init(from: "created", on: "OrderCancelled", to: "cancelled"),
                    .init(from: "paid", on: "OrderCancelled", to: "cancelled"),
                ]
            )
        } catch {
            preconditionFailure("the order lifecycle is valid: \(error)")
        }
    }()
}
