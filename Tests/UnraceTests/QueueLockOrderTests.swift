import Foundation
import Testing
import Unrace
import UnracePostgres
import UnraceSQL

/// The order in which one enqueue locks rows: two outbox transactions enqueuing on the same
/// ordering keys in other orders never wait on each other in a cycle (PostgreSQL would break it
/// after `deadlock_timeout` and retry the whole step, a second later).
@Suite("Queue lock order", .timeLimit(.minutes(10)))
struct QueueLockOrderTests {
    @Test(
        "enqueue([B, A]) locks key A's sequence before it waits for B's, as enqueue([A, B]) does: crossed keys cannot deadlock",
        .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
    )
    func crossedKeys() async throws {
        try await withStore(.postgres) { store, _ in try await Self.crossedKeys(store) }
    }

    static func crossedKeys<S: SQLStore>(_ store: S) async throws {
        do {
            let queue = try QueueTests.queue(store, ManualWallClock())
            let (a, b) = ("key-a", "key-b")
            // Both keys have their sequence rows already.
            try await queue.enqueue([
                OutgoingMessage(id: "a0", payload: [0], orderingKey: a), OutgoingMessage(id: "b0", payload: [0], orderingKey: b),
            ])
            let held = Latch()
            let release = Latch()
            // Another transaction enqueuing on B, not yet committed: it holds B's sequence row.
            let holder = Task {
                try await store.withTransaction { tx in
                    try await queue.enqueue([OutgoingMessage(id: "b1", payload: [1], orderingKey: b)], in: tx)
                    held.open()
                    await release.wait()
                }
            }
            await held.wait()
            let crossed = Task {
                try await store.withTransaction { tx in
                    try await queue.enqueue(
                        [OutgoingMessage(id: "b2", payload: [2], orderingKey: b), OutgoingMessage(id: "a2", payload: [2], orderingKey: a)],
                        in: tx
                    )
                }
            }
            // Key A's row is taken while the crossed enqueue waits for B: a third transaction
            // cannot lock it without waiting (55P03).
            var observed: (any Error)?
            do {
                try await within(.seconds(60), "key A's sequence row locked by the waiting enqueue") {
                    while true {
                        do {
                            try await store.withTransaction { tx in
                                _ = try await tx.query(
                                    "SELECT last_sequence FROM unrace_queue_sequences WHERE queue = ? AND key = ? FOR UPDATE NOWAIT",
                                    [.text(queue.name), .text(a)]
                                )
                            }
                        } catch let error as UnraceError where (error.detail ?? "").contains("55P03") {
                            return
                        }
                        try await Task.sleep(for: .milliseconds(10))
                    }
                }
            } catch { observed = error }
            release.open()
            try await holder.value
            _ = try await crossed.value
            if let observed { throw observed }
            // Each key's messages keep their call order.
            var sequences: [String: Int64] = [:]
            for row in try await store.withTransaction({ tx in
                try await tx.query("SELECT id, sequence FROM unrace_queue_messages WHERE queue = ?", [.text(queue.name)])
            }) {
                sequences[try row.string("id")] = try row.int64("sequence")
            }
            #expect(sequences == ["a0": 1, "b0": 1, "b1": 2, "b2": 3, "a2": 2])
        }
    }
}

/// A keyed message an inbox applied is never enqueued again under a new position, even once the
/// queue purged it: the inbox holds its event id for ever, and would refuse the new position.
@Suite("Queue ids an inbox remembers", .timeLimit(.minutes(10)))
struct QueuePurgedRedeliveryTests {
    @Test(
        "a purged keyed message enqueued again is alreadyEnqueued (another payload: message_id_reused), so its key's stream goes on",
        arguments: storeBackends
    )
    func purgedThenEnqueuedAgain(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.purgedThenEnqueuedAgain(store) }
    }

    static func purgedThenEnqueuedAgain<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try QueueTests.queue(store, clock)
        let inbox = try Inbox(store: store)
        func consume() async throws -> [InboxOutcome] {
            var outcomes: [InboxOutcome] = []
            for delivery in try await queue.lease(limit: 10, worker: "w") {
                outcomes.append(try await inbox.receive(try delivery.inboxEvent(type: "t")) { _, _ in .applied })
                try await queue.ack(delivery)
            }
            return outcomes
        }
        #expect(try await queue.enqueue([OutgoingMessage(id: "m1", payload: [1], orderingKey: "k")]) == [.enqueued])
        #expect(try await consume() == [.applied(drained: 0)])
        clock.advance(by: .seconds(120))
        #expect(try await queue.purgeCompleted(olderThan: .seconds(60)) == 1)
        // The outbox relay runs again: the same message, and the next one.
        #expect(
            try await queue.enqueue([
                OutgoingMessage(id: "m1", payload: [1], orderingKey: "k"), OutgoingMessage(id: "m2", payload: [2], orderingKey: "k"),
            ])
                == [.alreadyEnqueued, .enqueued]
        )
        #expect(try await consume() == [.applied(drained: 0)])
        let stream = try InboxEvent.derivedNames(queue: queue.name, messageID: "m2", orderingKey: "k").stream
        #expect(try await inbox.head(of: stream) == 2)
        for other in [
            OutgoingMessage(id: "m1", payload: [9], orderingKey: "k"), OutgoingMessage(id: "m1", payload: [1], orderingKey: "other"),
        ] {
            #expect(await QueueTests.code { try await queue.enqueue([other]) } == "message_id_reused")
        }
        let depth = try await queue.depth()
        #expect(depth.ready == 0 && depth.leased == 0 && depth.dead == 0 && depth.done == 1, "\(depth)")
    }
}
