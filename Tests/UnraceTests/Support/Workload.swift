import Foundation
import Logging
import Unrace

/// A seeded workload of public-API calls for the cross-store differential suite: the same seed
/// gives the same calls, which must give the same answers on every store.
///
/// It leans on the edges where stores have differed before: names with NUL, control and format
/// characters, NFC and NFD spellings, values at the edges of `Int64`, lease and pending expiry
/// driven by a manual clock, quotas across windows, linked chains, and inbox events shuffled,
/// duplicated and reused across streams.
struct Workload {
    enum Call: Sendable, CustomStringConvertible {
        case advance(milliseconds: Int64)
        case perform(key: String, scope: Int, fingerprint: Int, holder: Int, outcome: BodyOutcome)
        case begin(key: String, scope: Int, fingerprint: Int, holder: Int)
        case checkpoint(handle: Int, point: Int)
        case complete(handle: Int, value: Int)
        case fail(handle: Int, terminal: Bool)
        case status(key: String, scope: Int)
        case purge(scope: Int, limit: Int)
        case createRecord(id: String, value: Int)
        case writeRecord(id: String, value: Int, expected: Int64)
        case replaceRecord(id: String, value: Int)
        case readRecord(id: String)
        case createCounter(name: String, value: Int64, floor: Int64, ceiling: Int64)
        case adjust(name: String, delta: Int64)
        case consume(name: String, units: Int64, limit: Int64, windowSeconds: Int)
        case createResource(name: String, capacity: Int64)
        case hold(resource: String, key: String, units: Int64, ttlSeconds: Int)
        case settle(key: String, confirm: Bool)
        case createAccounts([Account])
        case submit([Transfer])
        case voidExpired(limit: Int)
        case receive(InboxEventSpec, verdict: Bool)
        case skipGap(stream: String)
        case transition(event: String, entity: String)
        case peek(key: String, scope: Int, fingerprint: Int)
        case purgeEveryScope(limit: Int)
        case releaseExpiredHolds(limit: Int)
        case enqueue([QueueSpec])
        case lease(limit: Int, worker: String)
        case ack(delivery: Int)
        case nack(delivery: Int, retryAfterMilliseconds: Int64?)
        case extend(delivery: Int, milliseconds: Int64)
        case redrive(id: String)
        case deadLetters
        case depth
        case purgeCompleted(ageMilliseconds: Int64, limit: Int)
        case receiveDelivery(delivery: Int)

        var description: String {
            switch self {
            case .advance(let ms): "advance \(ms)ms"
            case .perform(let key, let scope, let fingerprint, let holder, let outcome):
                "perform \(key.debugDescription) s\(scope) f\(fingerprint) h\(holder) \(outcome)"
            case .begin(let key, let scope, let fingerprint, let holder):
                "begin \(key.debugDescription) s\(scope) f\(fingerprint) h\(holder)"
            case .checkpoint(let handle, let point): "checkpoint #\(handle) \(point)"
            case .complete(let handle, let value): "complete #\(handle) \(value)"
            case .fail(let handle, let terminal): "fail #\(handle) \(terminal ? "terminal" : "retryable")"
            case .status(let key, let scope): "status \(key.debugDescription) s\(scope)"
            case .purge(let scope, let limit): "purge s\(scope) \(limit)"
            case .createRecord(let id, let value): "createRecord \(id.debugDescription) \(value)"
            case .writeRecord(let id, let value, let expected): "writeRecord \(id.debugDescription) \(value) if v\(expected)"
            case .readRecord(let id): "readRecord \(id.debugDescription)"
            case .replaceRecord(let id, let value): "replaceRecord \(id.debugDescription) \(value)"
            case .createCounter(let name, let value, let floor, let ceiling):
                "createCounter \(name.debugDescription) \(value) [\(floor), \(ceiling)]"
            case .adjust(let name, let delta): "adjust \(name.debugDescription) \(delta)"
            case .consume(let name, let units, let limit, let window): "consume \(name.debugDescription) \(units)/\(limit) per \(window)s"
            case .createResource(let name, let capacity): "createResource \(name.debugDescription) \(capacity)"
            case .hold(let resource, let key, let units, let ttl):
                "hold \(resource.debugDescription) \(key.debugDescription) \(units) for \(ttl)s"
            case .settle(let key, let confirm): "\(confirm ? "confirm" : "release") \(key.debugDescription)"
            case .createAccounts(let accounts): "createAccounts \(accounts.map(\.id.debugDescription))"
            case .submit(let transfers):
                "submit \(transfers.map { "\($0.id):\($0.debitAccount)→\($0.creditAccount) \($0.amount) f\($0.flags.rawValue) p\($0.pendingID ?? "-") t\($0.timeoutMilliseconds)" })"
            case .voidExpired(let limit): "voidExpired \(limit)"
            case .receive(let event, let verdict):
                "receive \(event.id.debugDescription) \(event.stream)#\(event.sequence) \(verdict ? "apply" : "reject")"
            case .skipGap(let stream): "skipGap \(stream)"
            case .transition(let event, let entity): "transition \(entity.debugDescription) on \(event)"
            case .peek(let key, let scope, let fingerprint): "peek \(key.debugDescription) s\(scope) f\(fingerprint)"
            case .purgeEveryScope(let limit): "purgeEveryScope \(limit)"
            case .releaseExpiredHolds(let limit): "releaseExpiredHolds \(limit)"
            case .enqueue(let messages):
                "enqueue \(messages.map { "\($0.id.debugDescription) p\($0.payload) k\($0.key ?? "-") d\($0.delayMilliseconds)" })"
            case .lease(let limit, let worker): "lease \(limit) by \(worker.debugDescription)"
            case .ack(let delivery): "ack #\(delivery)"
            case .nack(let delivery, let after): "nack #\(delivery) after \(String(describing: after))"
            case .extend(let delivery, let ms): "extend #\(delivery) by \(ms)ms"
            case .redrive(let id): "redrive \(id.debugDescription)"
            case .deadLetters: "deadLetters"
            case .depth: "depth"
            case .purgeCompleted(let age, let limit): "purgeCompleted older than \(age)ms \(limit)"
            case .receiveDelivery(let delivery): "receive delivery #\(delivery)"
            }
        }
    }

    enum BodyOutcome: Sendable, CustomStringConvertible {
        case value(Int)
        case throwing
        var description: String {
            switch self {
            case .value(let value): "→ \(value)"
            case .throwing: "throws"
            }
        }
    }

    struct QueueSpec: Sendable {
        var id: String
        var payload: Int
        var key: String?
        var delayMilliseconds: Int64
    }

    /// Message ids, including ones the queue must refuse alike on every store.
    static let messageIDs = ["m1", "m2", "m3", "m4", "caf\u{E9}", "x\u{0}y", "", String(repeating: "m", count: 191)]

    struct InboxEventSpec: Sendable {
        var id: String
        var stream: String
        var sequence: Int64
        var type: String
    }

    /// Names, including ones every store must refuse the same way, and equal-looking pairs.
    static let names = [
        "a", "b", "c", "caf\u{E9}", "cafe\u{301}", "x\u{0}y", "line\nbreak", "rtl\u{200F}", "", String(repeating: "k", count: 256),
    ]
    static let validNames = ["a", "b", "c", "caf\u{E9}"]
    static let edges: [Int64] = [0, 1, -1, 5, 100, .max, .max - 3, .min, .min + 3, 1 << 53, -(1 << 53), (1 << 53) + 1]
    static let events = ["OrderCreated", "PaymentCaptured", "OrderShipped", "OrderCancelled"]

    let calls: [Call]
    /// Where the workload's clock starts: usually now-ish, sometimes at the ends of time, where
    /// every store must saturate the same way.
    let start: Timestamp

    init(seed: UInt64, length: Int = 60) {
        var random = SeededGenerator(seed: seed)
        switch random.int(in: 0...9) {
        case 0: start = Timestamp(milliseconds: .max - 5_000)
        case 1: start = Timestamp(milliseconds: .min + 5_000)
        default: start = Timestamp(milliseconds: 1_700_000_000_000)
        }
        func pick<T>(_ items: [T]) -> T { items[random.int(in: 0...(items.count - 1))] }
        func name() -> String { random.chance(4, in: 5) ? pick(Self.validNames) : pick(Self.names) }
        func edge() -> Int64 { pick(Self.edges) }
        var calls: [Call] = [
            .createCounter(name: "a", value: 5, floor: 0, ceiling: 10),
            .createResource(name: "a", capacity: 2),
            .createAccounts(
                ["a", "b", "c", "caf\u{E9}"].map {
                    Account(id: $0, ledger: 1, code: 1, flags: $0 == "a" ? .debitsMustNotExceedCredits : [])
                }
            ),
            .submit([Transfer(id: "fund", debit: "b", credit: "a", amount: 100)]),
            .enqueue([
                QueueSpec(id: "m1", payload: 0, key: "k1", delayMilliseconds: 0),
                QueueSpec(id: "m2", payload: 1, key: "k1", delayMilliseconds: 0),
                QueueSpec(id: "m3", payload: 0, key: nil, delayMilliseconds: 0),
            ]),
        ]
        // Inbox events: two streams, shuffled and some duplicated; an id now and then reused.
        var inbox: [InboxEventSpec] = []
        for stream in ["s1", "s2"] {
            for sequence in 1...Int64(random.int(in: 2...5)) {
                inbox.append(InboxEventSpec(id: "\(stream)-\(sequence)", stream: stream, sequence: sequence, type: pick(Self.events)))
            }
        }
        inbox = random.shuffled(inbox + inbox.filter { _ in random.chance(1, in: 3) })
        var transferNumber = 0
        for _ in 0..<length {
            switch random.int(in: 0...29) {
            case 0: calls.append(.advance(milliseconds: pick([1, 500, 2_000, 9_999, 10_000, 61_000])))
            case 1, 2:
                calls.append(
                    .perform(
                        key: name(),
                        scope: random.int(in: 0...1),
                        fingerprint: random.int(in: 0...2),
                        holder: random.int(in: 0...1),
                        outcome: random.chance(1, in: 4) ? .throwing : .value(random.int(in: 0...9))
                    )
                )
            case 3:
                calls.append(
                    .begin(key: name(), scope: random.int(in: 0...1), fingerprint: random.int(in: 0...2), holder: random.int(in: 0...1))
                )
            case 4:
                let handle = random.int(in: 0...5)
                calls.append(
                    pick([
                        .checkpoint(handle: handle, point: random.int(in: 0...9)), .complete(handle: handle, value: random.int(in: 0...9)),
                        .fail(handle: handle, terminal: random.chance(1, in: 2)),
                    ])
                )
            case 5:
                calls.append(
                    pick([
                        .status(key: name(), scope: random.int(in: 0...1)), .purge(scope: random.int(in: 0...1), limit: pick([1, 2, 100])),
                    ])
                )
            case 6: calls.append(.createRecord(id: name(), value: random.int(in: 0...9)))
            case 7:
                calls.append(
                    pick([
                        .writeRecord(id: name(), value: random.int(in: 0...9), expected: Int64(random.int(in: 0...3))),
                        .readRecord(id: name()),
                        .replaceRecord(id: name(), value: random.int(in: 0...9)),
                    ])
                )
            case 8:
                let floor = random.chance(1, in: 2) ? Int64.min : edge()
                let ceiling = random.chance(1, in: 2) ? Int64.max : edge()
                calls.append(.createCounter(name: name(), value: edge(), floor: floor, ceiling: ceiling))
            case 9, 10: calls.append(.adjust(name: name(), delta: edge()))
            case 11:
                calls.append(
                    .consume(name: name(), units: pick([1, 2, 3, 5, 0]), limit: pick([1, 3, 4, 1 << 53]), windowSeconds: pick([1, 60]))
                )
            case 12:
                calls.append(
                    pick([
                        .createResource(name: name(), capacity: pick([1, 2, 0])),
                        .hold(resource: name(), key: name(), units: pick([1, 2, 3]), ttlSeconds: pick([1, 60])),
                    ])
                )
            case 13: calls.append(.settle(key: name(), confirm: random.chance(1, in: 2)))
            case 14:
                calls.append(
                    .createAccounts([
                        Account(
                            id: name(),
                            ledger: pick([1, 1, 2]),
                            code: 1,
                            flags: random.chance(1, in: 3) ? .debitsMustNotExceedCredits : []
                        )
                    ])
                )
            case 15, 16:
                var transfers: [Transfer] = []
                for index in 0..<random.int(in: 1...3) {
                    transferNumber += 1
                    let id = random.chance(1, in: 6) ? "t\(random.int(in: 1...max(1, transferNumber)))" : "t\(transferNumber)"
                    var transfer = Transfer(
                        id: id,
                        debit: name(),
                        credit: name(),
                        amount: random.chance(1, in: 5) ? edge() : Int64(random.int(in: 1...60))
                    )
                    switch random.int(in: 0...4) {
                    case 0:
                        transfer.flags = .pending
                        transfer.timeoutMilliseconds = pick([0, 1_000, 60_000])
                    case 1:
                        transfer.flags = .postPending
                        transfer.pendingID = "t\(random.int(in: 1...max(1, transferNumber)))"
                        transfer.amount = pick([0, 10])
                    case 2:
                        transfer.flags = .voidPending
                        transfer.pendingID = "t\(random.int(in: 1...max(1, transferNumber)))"
                        transfer.amount = 0
                    default: break
                    }
                    if index < 2, random.chance(1, in: 4) { transfer.flags.insert(.linked) }
                    transfers.append(transfer)
                }
                calls.append(.submit(transfers))
            case 17: calls.append(.voidExpired(limit: pick([1, 100])))
            case 18, 19:
                if !inbox.isEmpty {
                    var event = inbox.removeFirst()
                    if random.chance(1, in: 12) { event.stream = event.stream == "s1" ? "s2" : "s1" }  // an id reused elsewhere
                    calls.append(.receive(event, verdict: random.chance(5, in: 6)))
                }
            case 20: calls.append(.skipGap(stream: pick(["s1", "s2"])))
            case 21: calls.append(.transition(event: pick(Self.events), entity: name()))
            case 22:
                calls.append(
                    pick([
                        .peek(key: name(), scope: random.int(in: 0...1), fingerprint: random.int(in: 0...2)),
                        .purgeEveryScope(limit: pick([1, 3, 100])), .releaseExpiredHolds(limit: pick([1, 100])),
                    ])
                )
            case 23:
                // The queue: enqueue (some ids repeated, some with another payload), lease, settle.
                let messages = (0..<random.int(in: 1...3)).map { _ in
                    Workload.QueueSpec(
                        id: random.chance(7, in: 8) ? pick(Array(Self.messageIDs.prefix(4))) : pick(Self.messageIDs),
                        payload: random.int(in: 0...1),
                        key: pick([nil, "k1", "k2"]),
                        delayMilliseconds: pick([0, 0, 1_000])
                    )
                }
                calls.append(.enqueue(messages))
            case 24, 25: calls.append(.lease(limit: pick([1, 2, 5]), worker: random.chance(1, in: 10) ? "" : pick(["w1", "w2"])))
            case 26, 27:
                let delivery = random.int(in: 0...2)
                calls.append(
                    pick([
                        .ack(delivery: delivery), .nack(delivery: delivery, retryAfterMilliseconds: pick([nil, 0, 0, 5_000, -1])),
                        .nack(delivery: delivery, retryAfterMilliseconds: 0),
                        .extend(delivery: delivery, milliseconds: pick([1, 20_000, 0])), .receiveDelivery(delivery: delivery),
                    ])
                )
            default:
                calls.append(
                    random.chance(1, in: 2)
                        ? .redrive(id: pick(Array(Self.messageIDs.prefix(random.chance(1, in: 8) ? 5 : 3))))
                        : pick([
                            .deadLetters, .depth, .purgeCompleted(ageMilliseconds: pick([0, 1_000, 60_000]), limit: pick([1, 100])),
                        ])
                )
            }
        }
        self.calls = calls
    }
}

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
        for name in Workload.validNames {
            for scope in scopes {
                lines.append("operation \(scope) \(name): \(Self.describe(try await operations.status(of: name, scope: scope)))")
            }
            lines.append(
                "record \(name): \(String(describing: try await records.read(name, as: Int.self).map { "\($0.value)@\($0.version)" }))"
            )
            lines.append("counter \(name): \(String(describing: try await counters.counter(name)))")
            lines.append("quota \(name): \(String(describing: try await counters.quota(name)))")
            lines.append("resource \(name): \(String(describing: try await reservations.resource(name)))")
            lines.append("hold \(name): \(String(describing: try await reservations.hold(key: name)))")
            lines.append("lifecycle \(name): \(String(describing: try await lifecycle.state(of: name)))")
        }
        lines.append("accounts: \(try await ledger.lookupAccounts(Workload.validNames))")
        lines.append("totals: \(try await ledger.totals())")
        for stream in ["s1", "s2"] { lines.append("inbox \(stream): head \(try await inbox.head(of: stream))") }
        lines.append("gaps: \(try await inbox.gaps(limit: 10))")
        for key in ["k1", "k2"] { lines.append("queue stream \(key): head \(try await inbox.head(of: "$wq/\(key)"))") }
        lines.append("queue depth: \(try await queue.depth())")
        lines.append("dead letters: \(try await queue.deadLetters().map(Self.describe))")
        // Every message that can still be delivered, and how many attempts it has left: leased
        // once more, then nacked (retried, or dead-lettered on its last attempt).
        let final = try await queue.lease(limit: 1_000, worker: "final")
        lines.append("messages: \(final.map(Self.describe).sorted())")
        for delivery in final.sorted(by: { $0.id.utf8.lexicographicallyPrecedes($1.id.utf8) }) {
            lines.append("last nack \(delivery.id.debugDescription): \(try await queue.nack(delivery, reason: "final", retryAfter: .zero))")
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
