import Foundation
import Testing
import Unrace

/// Names Unrace derives for itself live where no caller can write them: a queue's inbox streams
/// and event ids start with `$`, which every caller-built event is refused.
@Suite("Reserved namespaces", .timeLimit(.minutes(10)))
struct ReservedNamespaceTests {
    @Test(
        "a caller's events cannot move a queue's stream: the old names are another stream, the reserved ones are refused, the deliveries apply in order",
        arguments: allBackends
    )
    func forgedStream(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.forgedStream(store) }
    }

    static func forgedStream<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try QueueTests.queue(store, clock)
        var configuration = InboxConfiguration()
        configuration.clock = clock
        let inbox = try Inbox(store: store, configuration: configuration)
        try await queue.enqueue([QueueTests.message("capture:o1", key: "o1"), QueueTests.message("email:o1", key: "o1")])

        // The forgery of the shop's `POST /events`: the stream and ids a queue used to derive.
        let head = try InboxEvent(id: "forged-1", stream: "\(queue.name)/o1", sequence: 1, type: "capture")
        let parked = try InboxEvent(id: "forged-3", stream: "\(queue.name)/o1", sequence: 3, type: "capture")
        #expect(try await inbox.receive(head) { _, _ in .applied } == .applied(drained: 0))
        #expect(try await inbox.receive(parked) { _, _ in .applied } == .parked(waitingFor: 2))
        // The reserved names themselves, also behind a combining mark (bytes count, not characters).
        for (id, stream) in [
            ("forged-2", "$\(queue.name)/o1"), ("$\(queue.name)/capture:o1", "elsewhere"), ("forged-4", "$\u{301}\(queue.name)/o1"),
        ] {
            #expect(await QueueTests.code { _ = try InboxEvent(id: id, stream: stream, sequence: 1, type: "capture") } == "invalid_event")
        }

        let deliveries = try await queue.lease(limit: 2, worker: "worker")
        #expect(deliveries.map(\.sequence) == [1, 2])
        // A delivery's event changed after it was derived is refused, and writes nothing.
        var moved = try deliveries[0].inboxEvent(type: "capture")
        moved.stream = "$\(queue.name)/o2"
        #expect(await QueueTests.code { _ = try await inbox.receive(moved) { _, _ in .applied } } == "invalid_event")
        var renumbered = try deliveries[0].inboxEvent(type: "capture")
        renumbered.sequence = 5
        #expect(await QueueTests.code { _ = try await inbox.receive(renumbered) { _, _ in .applied } } == "invalid_event")

        var applied: [String] = []
        for delivery in deliveries {
            let event = try delivery.inboxEvent(type: "task")
            #expect(event.stream == "$\(queue.name)/o1" && event.id == "$\(queue.name)/\(delivery.id)")
            let outcome = try await inbox.receive(event) { _, event in
                applied.append(String(decoding: event.payload, as: UTF8.self) + "#\(event.sequence)")
                return .applied
            }
            #expect(outcome == .applied(drained: 0), "the queue's own delivery applies: a forged head never answers it as a duplicate")
            try await queue.ack(delivery)
        }
        #expect(applied == ["charge#1", "charge#2"])
        #expect(try await inbox.head(of: "$\(queue.name)/o1") == 2)
        #expect(try await inbox.head(of: "\(queue.name)/o1") == 1, "the forged stream is a stream of its own")
    }

    @Test("an operator can skip a gap on a queue's stream; its markers are reserved too", arguments: allBackends)
    func skipOnQueueStream(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.skipOnQueueStream(store) }
    }

    static func skipOnQueueStream<S: Store>(_ store: S) async throws {
        let clock = ManualWallClock()
        let queue = try QueueTests.queue(store, clock)
        var configuration = InboxConfiguration()
        configuration.clock = clock
        let inbox = try Inbox(store: store, configuration: configuration)
        try await queue.enqueue((1...3).map { QueueTests.message("m\($0)", key: "k") })
        let deliveries = try await queue.lease(limit: 3, worker: "worker")
        #expect(try await inbox.receive(try deliveries[2].inboxEvent(type: "t")) { _, _ in .applied } == .parked(waitingFor: 1))
        let stream = "$\(queue.name)/k"
        clock.advance(by: .seconds(61))
        #expect(try await inbox.gaps(limit: 10).map(\.stream) == [stream], "gaps report the stream by its reserved name")
        let skipped = try await inbox.skipGap(stream: stream) { _, _ in .applied }
        #expect(skipped.skipped == 2 && skipped.drained == 1)
        #expect(try await inbox.head(of: stream) == 3)
        // The first two deliveries now find their positions taken by the markers.
        #expect(try await inbox.receive(try deliveries[0].inboxEvent(type: "t")) { _, _ in .applied } == .duplicate)
    }
}
