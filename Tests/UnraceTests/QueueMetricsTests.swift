import Foundation
import MetricsTestKit
import Synchronization
import Testing
import Unrace
import UnraceSQL

/// The counters a queue keeps, read back from swift-metrics' test factory after a scripted run.
@Suite("Queue metrics")
struct QueueMetricsTests {
    @Test("a redelivery, a fenced ack, a nack to the dead-letter queue and an expired last lease are counted", arguments: storeBackends)
    func counters(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.scripted(store, backend) }
    }

    static func scripted<S: Store>(_ store: S, _ backend: Backend) async throws {
        let metrics = TestMetrics()
        let clock = ManualWallClock()
        var configuration = QueueConfiguration()
        configuration.clock = clock
        configuration.maxAttempts = 2
        configuration.metricsFactory = metrics
        let queue = try MessageQueue(store: store, name: uniqueName("metrics"), configuration: configuration)
        try await queue.enqueue([QueueTests.message("a"), QueueTests.message("b"), QueueTests.message("c")])
        try await queue.enqueue([QueueTests.message("a")])
        let first = try await queue.lease(limit: 3, worker: "w")  // a, b, c: 3 first deliveries
        clock.advance(by: .seconds(31))
        let second = try await queue.lease(limit: 3, worker: "w")  // 3 redeliveries
        await #expect(throws: UnraceError.self) { try await queue.ack(first[0]) }  // fenced
        try await queue.ack(second[0])
        try await queue.ack(second[0])  // harmless, and not a second ack
        try await store.withTransaction { tx in try await queue.ack(second[0], in: tx) }  // nor in a transaction
        #expect(try await queue.nack(second[1], reason: "no") == .deadLettered)  // b: its last attempt
        clock.advance(by: .seconds(31))
        #expect(try await queue.lease(limit: 3, worker: "w").isEmpty)  // c: its last lease ran out

        let store = backend.label
        func count(_ label: String, _ extra: (String, String)? = nil) throws -> Int64 {
            var dimensions = [("queue", queue.name), ("store", store)]
            if let extra { dimensions.append(extra) }
            return try metrics.expectCounter(label, dimensions).totalValue
        }
        #expect(try count("unrace_queue_enqueued_total", ("result", "enqueued")) == 3)
        #expect(try count("unrace_queue_enqueued_total", ("result", "already_enqueued")) == 1)
        #expect(try count("unrace_queue_deliveries_total", ("delivery", "first")) == 3)
        #expect(try count("unrace_queue_deliveries_total", ("delivery", "redelivery")) == 3)
        #expect(try count("unrace_queue_fenced_total") == 1)
        #expect(try count("unrace_queue_acks_total") == 1)
        #expect(try count("unrace_queue_nacks_total") == 1)
        #expect(try count("unrace_queue_dead_lettered_total", ("cause", "nack")) == 1)
        #expect(try count("unrace_queue_dead_lettered_total", ("cause", "lease")) == 1)
    }
}

/// The counters an inbox keeps.
@Suite("Inbox metrics")
struct InboxMetricsTests {
    @Test("parked, applied with a drain, duplicate and rejected events are counted by verdict", arguments: storeBackends)
    func counters(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.scripted(store, backend) }
    }

    static func scripted<S: Store>(_ store: S, _ backend: Backend) async throws {
        let metrics = TestMetrics()
        var configuration = InboxConfiguration()
        configuration.metricsFactory = metrics
        let inbox = try Inbox(store: store, configuration: configuration)
        let stream = uniqueName("s")
        func event(_ sequence: Int64) throws -> InboxEvent {
            try InboxEvent(id: "\(stream)-\(sequence)", stream: stream, sequence: sequence, type: "T")
        }
        #expect(try await inbox.receive(try event(2)) { _, _ in .applied } == .parked(waitingFor: 1))
        #expect(try await inbox.receive(try event(1)) { _, _ in .applied } == .applied(drained: 1))
        #expect(try await inbox.receive(try event(1)) { _, _ in .applied } == .duplicate)
        #expect(
            try await inbox.receive(try event(3)) { _, _ in .rejected(reason: "impossible") } == .rejected(reason: "impossible", drained: 0)
        )
        let store = backend.label
        func count(_ label: String, _ verdict: String? = nil) throws -> Int64 {
            try metrics.expectCounter(label, [("store", store)] + (verdict.map { [("verdict", $0)] } ?? [])).totalValue
        }
        #expect(try count("unrace_inbox_events_total", "parked") == 1)
        #expect(try count("unrace_inbox_events_total", "applied") == 1)
        #expect(try count("unrace_inbox_events_total", "duplicate") == 1)
        #expect(try count("unrace_inbox_events_total", "rejected") == 1)
        #expect(try count("unrace_inbox_drained_total") == 1)
    }
}
