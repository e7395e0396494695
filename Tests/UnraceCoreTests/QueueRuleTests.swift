import Testing
import UnraceCore

/// The queue's rules alone: no store, no clock but the one given.
@Suite("Queue rules")
struct QueueRuleTests {
    static let now = Timestamp(milliseconds: 1_000_000)

    static func message(_ state: QueueMessageState, attempts: Int64 = 0, maxAttempts: Int64 = 3, position: Int64 = 7) -> QueueMessage {
        QueueMessage(
            queue: "q",
            id: "m",
            orderingKey: nil,
            sequence: nil,
            payload: [1],
            state: state,
            attempts: attempts,
            maxAttempts: maxAttempts,
            visibleAt: Timestamp(milliseconds: 0),
            leasedBy: nil,
            lastError: nil,
            enqueuedAt: Timestamp(milliseconds: 0),
            completedAt: nil,
            position: position
        )
    }

    @Test("a lease delivers the next attempt until the visibility timeout; an expired lease leaves its reason")
    func leaseDelivers() {
        let (first, leased) = QueueRule.lease(Self.message(.ready), worker: "w1", visibility: .seconds(30), now: Self.now)
        #expect(first == .delivered)
        #expect(leased.state == .leased && leased.attempts == 1 && leased.leasedBy == "w1")
        #expect(leased.visibleAt == Timestamp(milliseconds: 1_030_000) && leased.lastError == nil)
        let (again, releasedTo) = QueueRule.lease(leased, worker: "w2", visibility: .seconds(30), now: Self.now)
        #expect(again == .delivered && releasedTo.attempts == 2 && releasedTo.leasedBy == "w2")
        #expect(releasedTo.lastError == "the lease of attempt 1 ran out without an ack")
    }

    @Test("the lease of the last attempt ran out: dead-lettered, not delivered")
    func leaseDeadLetters() {
        let (step, dead) = QueueRule.lease(Self.message(.leased, attempts: 3), worker: "w", visibility: .seconds(30), now: Self.now)
        #expect(step == .deadLettered)
        #expect(dead.state == .dead && dead.attempts == 3 && dead.completedAt == Self.now)
        #expect(dead.lastError == "the lease of attempt 3 of 3 ran out without an ack")
        // A ready message at its limit (redriven, say) is still delivered: only a lease that ran out dead-letters.
        #expect(QueueRule.lease(Self.message(.ready, attempts: 3), worker: "w", visibility: .seconds(1), now: Self.now).0 == .delivered)
    }

    @Test("a delivery owns its message only at its own attempt, position and state")
    func ownership() {
        let leased = Self.message(.leased, attempts: 2, position: 7)
        #expect(QueueRule.owns(leased, position: 7, attempt: 2, allowingDone: false))
        #expect(!QueueRule.owns(leased, position: 7, attempt: 1, allowingDone: false), "delivered again since")
        #expect(!QueueRule.owns(leased, position: 8, attempt: 2, allowingDone: false), "another message under the id, after a purge")
        #expect(!QueueRule.owns(Self.message(.ready, attempts: 2), position: 7, attempt: 2, allowingDone: true), "nacked")
        #expect(!QueueRule.owns(Self.message(.dead, attempts: 2), position: 7, attempt: 2, allowingDone: true), "dead-lettered")
        let done = Self.message(.done, attempts: 2)
        #expect(QueueRule.owns(done, position: 7, attempt: 2, allowingDone: true), "an ack repeated")
        #expect(!QueueRule.owns(done, position: 7, attempt: 2, allowingDone: false), "no nack after an ack")
    }

    @Test("an ack marks done once; an ack repeated changes nothing")
    func ack() throws {
        let acked = try #require(QueueRule.ack(Self.message(.leased, attempts: 1), now: Self.now))
        #expect(acked.state == .done && acked.completedAt == Self.now)
        #expect(QueueRule.ack(acked, now: Timestamp(milliseconds: 2_000_000)) == nil)
    }

    @Test("a nack makes the message ready after the delay, or dead after its last attempt")
    func nack() {
        let (dead1, retry) = QueueRule.nack(Self.message(.leased, attempts: 1), reason: "boom", delay: .seconds(4), now: Self.now)
        #expect(!dead1 && retry.state == .ready && retry.visibleAt == Timestamp(milliseconds: 1_004_000) && retry.lastError == "boom")
        let (dead2, last) = QueueRule.nack(Self.message(.leased, attempts: 3), reason: "boom", delay: .seconds(4), now: Self.now)
        #expect(dead2 && last.state == .dead && last.completedAt == Self.now && last.lastError == "boom")
    }

    @Test("a redrive gives as many attempts again, counting on (older deliveries stay fenced), without overflow")
    func redrive() {
        let ready = QueueRule.redrive(Self.message(.dead, attempts: 3, maxAttempts: 3), attempts: 3, now: Self.now)
        #expect(ready.state == .ready && ready.attempts == 3 && ready.maxAttempts == 6 && ready.visibleAt == Self.now)
        #expect(ready.completedAt == nil && ready.leasedBy == nil)
        #expect(!QueueRule.owns(ready, position: 7, attempt: 3, allowingDone: true))
        #expect(QueueRule.redrive(Self.message(.dead, attempts: .max - 1), attempts: 5, now: Self.now).maxAttempts == .max)
    }

    @Test("the backoff doubles per attempt up to its maximum, with no overflow at any attempt")
    func backoff() {
        let steps = (1...6).map { QueueRule.backoff(afterAttempt: Int64($0), base: .seconds(1), maximum: .seconds(10)) }
        #expect(steps == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
        #expect(QueueRule.backoff(afterAttempt: .max, base: .seconds(1), maximum: .seconds(10)) == .seconds(10))
        #expect(QueueRule.backoff(afterAttempt: .min, base: .seconds(1), maximum: .seconds(10)) == .seconds(1))
        #expect(QueueRule.backoff(afterAttempt: 41, base: .seconds(86_400), maximum: .seconds(86_400 * 30)) == .seconds(86_400 * 30))
        // Below a millisecond, exact: not rounded to 0 before doubling.
        #expect(QueueRule.backoff(afterAttempt: 1, base: .microseconds(500), maximum: .seconds(10)) == .microseconds(500))
        #expect(QueueRule.backoff(afterAttempt: 11, base: .microseconds(500), maximum: .seconds(10)) == .milliseconds(512))
        #expect(QueueRule.backoff(afterAttempt: 3, base: .microseconds(1_500), maximum: .seconds(10)) == .milliseconds(6))
        #expect(QueueRule.backoff(afterAttempt: 60, base: .nanoseconds(1), maximum: .seconds(2_000)) == .nanoseconds(1 << 40))
    }

    @Test("an id enqueued again: the same message is recognised, another is refused")
    func enqueue() {
        #expect(QueueRule.enqueue(payload: [1], orderingKey: "k", earlier: nil) == .new)
        #expect(QueueRule.enqueue(payload: [1], orderingKey: "k", earlier: ([1], "k")) == .alreadyEnqueued)
        #expect(QueueRule.enqueue(payload: [2], orderingKey: "k", earlier: ([1], "k")) == .idReused)
        #expect(QueueRule.enqueue(payload: [1], orderingKey: nil, earlier: ([1], "k")) == .idReused)
    }

    @Test("a reason keeps printable text, turns control characters into spaces, and is cut on a character boundary")
    func reason() {
        #expect(QueueRule.reason("timeout\r\nat\u{0}step", byteCountMaximum: 100) == "timeout  at step")
        let cut = QueueRule.reason(String(repeating: "é", count: 10), byteCountMaximum: 5)
        #expect(cut == "éé" && cut.utf8.count == 4)
    }
}
