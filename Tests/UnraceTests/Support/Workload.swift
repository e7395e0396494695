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
    /// Where the workload's clock starts: usually now-ish, sometimes at the ends of time: at the
    /// start every store must saturate the same way, at the end (past `Timestamp.latestReading`)
    /// refuse the same calls.
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
