import Foundation
import MetricsTestKit
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// The durable queue and outbox on every store: redelivery, fencing, dead letters, the outbox's
/// all-or-nothing, ordering keys through the inbox, and workers in separate processes.
struct PaymentDeclined: Error {}

@Suite("Durable queue and outbox", .timeLimit(.minutes(10)))
struct QueueTests {
    static func queue<S: Store>(
        _ store: S,
        _ clock: ManualWallClock,
        maxAttempts: Int = 10,
        name: String = uniqueName("q")
    ) throws -> MessageQueue<S> {
        var configuration = QueueConfiguration()
        configuration.clock = clock
        configuration.visibilityTimeout = .seconds(30)
        configuration.maxAttempts = maxAttempts
        configuration.backoff = .seconds(1)
        return try MessageQueue(store: store, name: name, configuration: configuration)
    }

    /// The code of the `UnraceError` `body` throws, or `nil` if it returns.
    static func code(_ body: () async throws -> Void) async -> String? {
        do {
            try await body()
            return nil
        } catch let error as UnraceError { return error.code.rawValue } catch { return "\(error)" }
    }

    static func message(_ id: String, _ text: String = "charge", key: String? = nil) -> OutgoingMessage {
        OutgoingMessage(id: id, payload: Array(text.utf8), orderingKey: key)
    }

    @Test(
        "a consumer that outlives the visibility timeout loses the message: it is delivered again, and the late ack is fenced",
        arguments: allBackends
    )
    func redelivery(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.redelivery(store) }
    }

    static func redelivery<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try queue(store, clock)
        #expect(try await queue.enqueue([message("m1")]) == [.enqueued])
        let first = try await queue.lease(worker: "slow")
        #expect(first.map(\.attempt) == [1])
        #expect(try await queue.lease(worker: "other").isEmpty, "invisible while leased")
        clock.advance(by: .seconds(31))  // the slow worker is still busy
        let second = try await queue.lease(worker: "fast")
        #expect(second.map(\.id) == ["m1"] && second.map(\.attempt) == [2] && second[0].isRedelivery)
        #expect(await Self.code { try await queue.ack(first[0]) } == "fenced")
        #expect(await Self.code { _ = try await queue.extend(first[0], by: .seconds(5)) } == "fenced")
        #expect(await Self.code { try await queue.nack(first[0], reason: "late") } == "fenced")
        try await queue.ack(second[0])
        try await queue.ack(second[0])  // twice is harmless
        #expect(try await queue.depth() == QueueDepth(done: 1))
        clock.advance(by: .seconds(60))
        #expect(try await queue.lease(worker: "fast").isEmpty, "an acked message is never delivered again")
    }

    @Test(
        "the same redelivery: a naive consumer charges twice, a consumer keyed by message id through Operations charges once",
        arguments: allBackends
    )
    func naiveAndGuardedConsumers(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.naiveAndGuarded(store) }
    }

    static func naiveAndGuarded<S: Store>(_ store: S) async throws {
        for guarded in [false, true] {
            let clock = ManualWallClock()
            let queue = try queue(store, clock)
            var configuration = OperationsConfiguration()
            configuration.clock = clock
            let operations = try Operations(store: store, configuration: configuration)
            let charges = Mutex(0)
            let charge: @Sendable (Delivery) async throws -> Void = { delivery in
                if guarded {
                    _ = try await operations.perform(key: "charge:\(delivery.id)") { _ in
                        charges.withLock {
                            $0 += 1
                            return $0
                        }
                    }
                } else {
                    _ = try await store.withTransaction { _ in charges.withLock { $0 += 1 } }
                }
            }
            try await queue.enqueue([message("order-7")])
            // Worker A charges, then stalls past the visibility timeout before its ack.
            let a = try await queue.lease(worker: "a")[0]
            try await charge(a)
            clock.advance(by: .seconds(31))
            let b = try await queue.lease(worker: "b")[0]
            try await charge(b)
            try await queue.ack(b)
            #expect(await Self.code { try await queue.ack(a) } == "fenced")
            #expect(charges.withLock { $0 } == (guarded ? 1 : 2), guarded ? "guarded: one charge" : "naive: the redelivery charged again")
        }
    }

    @Test("dead-lettered after N attempts, by nacks or by leases that ran out; redrive sends it round again", arguments: allBackends)
    func deadLetters(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.deadLetters(store) }
    }

    static func deadLetters<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try queue(store, clock, maxAttempts: 3)
        try await queue.enqueue([message("nacked"), message("stalled")])
        var outcomes: [NackOutcome] = []
        var stalled: Delivery?
        for attempt in 1...3 {
            let deliveries = try await queue.lease(limit: 10, worker: "w")
            let nacked = try #require(deliveries.first { $0.id == "nacked" })
            stalled = deliveries.first { $0.id == "stalled" } ?? stalled
            #expect(nacked.attempt == Int64(attempt))
            outcomes.append(try await queue.nack(nacked, reason: "provider said 503\n\u{0}"))
            clock.advance(by: .seconds(31))  // past the backoff (1 s, 2 s) and the stalled lease
        }
        #expect(outcomes.dropLast().allSatisfy { if case .retrying = $0 { true } else { false } })
        #expect(outcomes.last == .deadLettered)
        // "stalled" was leased three times and never acked: the next lease dead-letters it.
        #expect(try await queue.lease(limit: 10, worker: "w").isEmpty)
        let dead = try await queue.deadLetters()
        #expect(Set(dead.map(\.id)) == ["nacked", "stalled"])
        #expect(dead.first { $0.id == "nacked" }?.lastError == "provider said 503  ", "control characters in the reason become spaces")
        #expect(try await queue.depth() == QueueDepth(dead: 2))
        try await queue.redrive(id: "nacked")
        try await queue.redrive(id: "stalled")
        let again = try await queue.lease(limit: 10, worker: "w")
        // Attempt numbers go on across a redrive: the fencing token never repeats, so the worker
        // whose attempt 3 ran out before the redrive cannot ack the message's new delivery.
        #expect(again.map(\.id) == ["nacked", "stalled"] && again.map(\.attempt) == [4, 4])
        #expect(stalled?.attempt == 3)
        #expect(await Self.code { try await queue.ack(stalled!) } == "fenced")
        try await queue.ack(again[1])
        do {
            try await queue.redrive(id: "nacked")
            Issue.record("a leased message cannot be redriven")
        } catch let error as UnraceError { #expect(error.code == .invalidArgument) }
        // As many attempts again: 4, 5 retry, 6 is the last (the limit is stored, on every store).
        var redriven = again[0]
        for attempt in Int64(4)...6 {
            #expect(redriven.attempt == attempt)
            let outcome = try await queue.nack(redriven, reason: "again")
            #expect((outcome == .deadLettered) == (attempt == 6), "attempt \(attempt): \(outcome)")
            if attempt == 4 {
                // The backoff goes on with the attempt number too: attempt 4's, 8 s, not the first 1 s.
                #expect(outcome == .retrying(at: clock.now() + .seconds(8)), "\(outcome)")
            }
            clock.advance(by: .seconds(31))
            redriven = try await queue.lease(limit: 10, worker: "w").first ?? redriven
        }
        #expect(try await queue.deadLetters().map(\.maxAttempts) == [6])
    }

    @Test("nack backoff doubles per attempt up to the maximum")
    func backoff() throws {
        var configuration = QueueConfiguration()
        configuration.backoff = .seconds(1)
        configuration.backoffMaximum = .seconds(10)
        let queue = try MessageQueue(store: MemoryStore(), name: "q", configuration: configuration)
        #expect(
            (1...6).map { queue.backoff(afterAttempt: $0) } == [
                .seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10),
            ]
        )
        #expect(queue.backoff(afterAttempt: .max) == .seconds(10))
        #expect(queue.backoff(afterAttempt: .min) == .seconds(1) && queue.backoff(afterAttempt: 0) == .seconds(1))
    }

    @Test("outbox: a message exists if and only if its business transaction committed", arguments: allBackends)
    func outbox(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.outbox(store) }
    }

    static func outbox<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try queue(store, clock)
        let operations = try Operations(store: store)
        await #expect(throws: PaymentDeclined.self) {
            _ = try await operations.perform(key: "order-1") { tx -> String in
                try await queue.enqueue([message("email-order-1", "confirm order-1")], in: tx)
                throw PaymentDeclined()  // the order is rolled back: so is its email
            }
        }
        #expect(try await queue.depth() == QueueDepth())
        let receipt = try await operations.perform(key: "order-2") { tx -> [EnqueueResult] in
            try await queue.enqueue([message("email-order-2", "confirm order-2")], in: tx)
        }
        #expect(receipt.value == [.enqueued])
        #expect(try await queue.lease(worker: "mailer").map(\.id) == ["email-order-2"])
        // A batch with a reused id writes nothing, even when the caller catches the error and
        // commits the rest of its transaction.
        _ = try await operations.perform(key: "order-3") { tx -> String in
            #expect(
                await Self.code {
                    try await queue.enqueue([message("email-order-3"), message("email-order-2", "another body")], in: tx)
                } == "message_id_reused"
            )
            return "committed anyway"
        }
        #expect(try await queue.depth() == QueueDepth(leased: 1), "only order-2's email, leased by the mailer")
        #expect(
            await Self.code { try await queue.redrive(id: "email-order-3") } == "not_found",
            "the batch's first message was not written"
        )
        // The relay enqueues the same message again (a retried transaction): recognised.
        #expect(try await queue.enqueue([message("email-order-2", "confirm order-2")]) == [.alreadyEnqueued])
    }

    @Test("a redrive gives the redriving queue's maxAttempts more attempts, whatever the producer's was", arguments: allBackends)
    func redriveAttempts(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.redriveAttempts(store) }
    }

    static func redriveAttempts<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let name = uniqueName("q")
        let producer = try queue(store, clock, maxAttempts: 1, name: name)
        let redriver = try queue(store, clock, maxAttempts: 3, name: name)
        try await producer.enqueue([message("m")])
        var outcomes = [try await producer.nack(try #require(try await producer.lease(worker: "w").first), reason: "x")]
        try await redriver.redrive(id: "m")
        repeat {
            let delivery = try #require(try await producer.lease(worker: "w").first)
            outcomes.append(try await producer.nack(delivery, reason: "x", retryAfter: .zero))
        } while outcomes.last != .deadLettered && outcomes.count < 10
        #expect(outcomes.map { $0 == .deadLettered ? "dead" : "retry" } == ["dead", "retry", "retry", "dead"])
    }

    @Test(
        "ordering keys number messages per key; the inbox applies them in order whatever order they are delivered in",
        arguments: allBackends
    )
    func orderingThroughInbox(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.ordering(store) }
    }

    static func ordering<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try queue(store, clock)
        try await queue.enqueue([
            message("created", "created", key: "order-9"), message("other", "other", key: "order-1"),
            message("paid", "paid", key: "order-9"), message("cancelled", "cancelled", key: "order-9"),
        ])
        let deliveries = try await queue.lease(limit: 10, worker: "w").filter { $0.orderingKey == "order-9" }
        #expect(deliveries.map(\.sequence) == [1, 2, 3])
        let inbox = try Inbox(store: store)
        let applied = Mutex<[String]>([])
        for delivery in deliveries.reversed() {  // delivered newest first
            _ = try await inbox.receive(try delivery.inboxEvent(type: "order")) { _, event in
                applied.withLock { $0.append(String(decoding: event.payload, as: UTF8.self)) }
                return .applied
            }
            try await queue.ack(delivery)
        }
        #expect(applied.withLock { $0 } == ["created", "paid", "cancelled"])
        #expect(try await inbox.head(of: "$\(queue.name)/order-9") == 3)
        // Another queue numbering the same key has a stream of its own: nothing is taken for a duplicate.
        let other = try Self.queue(store, clock)
        try await other.enqueue([message("created", "refund", key: "order-9")])
        let theirs = try await other.lease(worker: "w")[0]
        #expect(theirs.sequence == 1)
        #expect(try await inbox.receive(try theirs.inboxEvent(type: "order")) { _, _ in .applied } == .applied(drained: 0))
        // A combining mark or variation selector after the "/" makes one Character of the two; the
        // slash is still there, and queue a/\u{301}b with message m would be queue a with message \u{301}b/m.
        for name in ["a/b", "a/\u{301}b", "x/\u{FE0F}"] {
            do {
                _ = try MessageQueue(store: store, name: name)
                Issue.record("a queue name with / is refused: queue a/b and message c would be queue a and message b/c")
            } catch let error as UnraceError { #expect(error.code == .invalidArgument) }
        }
        do {
            _ = try deliveries[0].inboxEvent(type: "bad\u{0}")
            Issue.record("a NUL in the type is refused")
        } catch let error as UnraceError { #expect(error.code == .invalidEvent) }
    }

    @Test("bad input gets a typed error and writes nothing", arguments: allBackends)
    func badInput(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.badInput(store) }
    }

    static func badInput<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try queue(store, clock)
        func code(_ body: () async throws -> Void) async -> String? {
            do {
                try await body()
                return nil
            } catch let error as UnraceError { return error.code.rawValue } catch { return "\(error)" }
        }
        #expect(await code { try await queue.enqueue([]) } == "invalid_argument")
        #expect(await code { try await queue.enqueue([message("a\u{0}b")]) } == "invalid_argument")
        #expect(await code { try await queue.enqueue([message(String(repeating: "x", count: 191))]) } == "invalid_argument")
        #expect(
            await code { try await queue.enqueue([OutgoingMessage(id: "big", payload: Array(repeating: 0, count: 256 * 1_024 + 1))]) }
                == "invalid_argument"
        )
        #expect(
            await code { try await queue.enqueue([OutgoingMessage(id: "late", payload: [], delay: .seconds(-1))]) } == "invalid_argument"
        )
        #expect(await code { try await queue.enqueue([message("ok"), message("k", key: "\u{202E}")]) } == "invalid_argument")
        #expect(try await queue.depth() == QueueDepth(), "a bad item fails the whole batch before anything is written")
        try await queue.enqueue([message("café")])
        // The same id, decomposed, is the same message; another payload under it is refused.
        #expect(try await queue.enqueue([message("cafe\u{301}")]) == [.alreadyEnqueued])
        #expect(await code { try await queue.enqueue([message("fresh"), message("café", "refund")]) } == "message_id_reused")
        #expect(try await queue.depth() == QueueDepth(ready: 1), "the batch with a reused id wrote nothing")
        #expect(await code { _ = try await queue.lease(limit: 0, worker: "w") } == "invalid_argument")
        #expect(await code { _ = try await queue.lease(limit: 1_001, worker: "w") } == "invalid_argument")
        #expect(await code { _ = try await queue.lease(worker: "") } == "invalid_argument")
        let delivery = try await queue.lease(worker: "w")[0]
        #expect(await code { try await queue.nack(delivery, reason: "x", retryAfter: .seconds(-1)) } == "invalid_argument")
        #expect(await code { _ = try await queue.extend(delivery, by: .zero) } == "invalid_argument")
        let other = try MessageQueue(store: store, name: uniqueName("q2"))
        #expect(await code { try await other.ack(delivery) } == "invalid_argument")
        #expect(try await queue.nack(delivery, reason: "later", retryAfter: .seconds(5)) == .retrying(at: clock.now() + .seconds(5)))
        #expect(await code { try await queue.ack(delivery) } == "fenced", "an ack after this delivery's nack is refused")
        #expect(await code { try await queue.redrive(id: "missing") } == "not_found")
        var bad = QueueConfiguration()
        bad.maxAttempts = 0
        #expect(await code { _ = try MessageQueue(store: store, name: "q", configuration: bad) } == "invalid_configuration")
        bad = QueueConfiguration()
        bad.visibilityTimeout = .seconds(13 * 3_600)
        #expect(await code { _ = try MessageQueue(store: store, name: "q", configuration: bad) } == "invalid_configuration")
        #expect(await code { _ = try MessageQueue(store: store, name: String(repeating: "q", count: 65)) } == "invalid_argument")
    }

    @Test("64 concurrent enqueues of one id store it once; acked messages are purged by age", arguments: allBackends)
    func concurrentEnqueueAndPurge(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.concurrentEnqueue(store) }
    }

    static func concurrentEnqueue<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try queue(store, clock)
        let results = try await withThrowingTaskGroup(of: EnqueueResult.self) { group in
            for _ in 0..<64 { group.addTask { try await queue.enqueue([message("once", key: "k")])[0] } }
            return try await group.reduce(into: [EnqueueResult]()) { $0.append($1) }
        }
        #expect(results.filter { $0 == .enqueued }.count == 1)
        try await queue.enqueue([message("twice", key: "k")])
        let deliveries = try await queue.lease(limit: 5, worker: "w")
        #expect(deliveries.map(\.sequence) == [1, 2], "the losing enqueues took no sequence number")
        for delivery in deliveries { try await queue.ack(delivery) }
        clock.advance(by: .seconds(10))
        #expect(try await queue.purgeCompleted(olderThan: .seconds(60)) == 0)
        clock.advance(by: .seconds(60))
        #expect(try await queue.purgeCompleted(olderThan: .seconds(60)) == 2)
        #expect(try await queue.depth() == QueueDepth())
        #expect(try await queue.enqueue([message("once", "new")]) == [.enqueued], "a purged id is free again")
        let renewed = try await queue.lease(worker: "w")
        #expect(renewed.map(\.attempt) == [1] && renewed[0].position != deliveries[0].position)
        #expect(
            await Self.code { try await queue.ack(deliveries[0]) } == "fenced",
            "a delivery of the purged message cannot settle the new one"
        )
    }
}
