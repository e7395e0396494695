import CoreMetrics
import Foundation
import InMemoryTracing
import Logging
import MetricsTestKit
import Synchronization
import Testing
import Tracing
import UnraceCore

@testable import Unrace

/// Spans, step latencies, the guards' counters and the logs, read back after scripted runs on
/// every store: what the Metrics article promises, and that no key, subject or payload leaks.
@Suite("Observability: spans, step timers, guard counters and logs")
struct ObservabilityTests {
    static let secret = "order-4242-secret"

    @Test(
        "every store step is a span and a latency sample; a multi-step call parents its steps; no key reaches either",
        arguments: storeBackends
    )
    func stepsAreSpansAndTimers(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.steps(store, backend) }
    }

    static func steps<S: Store>(_ store: S, _ backend: Backend) async throws {
        let tracer = InMemoryTracer()
        let metrics = TestMetrics()
        let operations = try Operations(store: store, observability: Observability(metricsFactory: metrics, tracer: tracer))
        _ = try await operations.perform(key: Self.secret) { _ in "done" }
        let replay = try await operations.perform(key: Self.secret) { _ in "again" }
        #expect(replay.isReplay)
        await #expect(throws: TestFailure.self) {
            _ = try await operations.perform(key: Self.secret + "-2") { _ -> String in throw TestFailure() }
        }

        let spans = tracer.finishedSpans
        let calls = spans.filter { $0.operationName == "unrace.operations.perform" }
        let steps = spans.filter { $0.operationName == "unrace.step.perform" }
        #expect(calls.count == 3)
        #expect(steps.count == 3)
        // Each step's parent is its call's span.
        #expect(Set(steps.compactMap(\.parentSpanID)) == Set(calls.map(\.spanID)))
        #expect(calls.filter { $0.attributes["unrace.replay"]?.toSpanAttribute() == .bool(true) }.count == 1)
        #expect(steps.allSatisfy { $0.attributes["unrace.store"]?.toSpanAttribute() == .string(backend.label) })
        // The failed body: an error status and a code, not the error's text.
        let failed = steps.filter { $0.status?.code == .error }
        #expect(failed.count == 1)
        #expect(failed.first?.attributes["unrace.error.code"]?.toSpanAttribute() == .string("other"))
        #expect(failed.first?.errors.isEmpty == true)
        // Nothing secret anywhere: names, attributes, events.
        for span in spans {
            #expect(!span.operationName.contains("4242"))
            // swift-format-ignore: ReplaceForEachWithForLoop
            span.attributes.forEach { key, value in  // SpanAttributes is not a Sequence
                #expect(!"\(key)=\(value)".contains("4242"), "span attribute \(key) carries the key")
            }
            #expect(span.events.isEmpty)
        }

        let timer = try metrics.expectTimer(
            "unrace_step_duration_seconds",
            [("api", "operations"), ("store", backend.label), ("step", "perform")]
        )
        #expect(timer.values.count == 3)
        #expect(timer.values.allSatisfy { $0 > 0 })
        let failures = try metrics.expectCounter(
            "unrace_step_failures_total",
            [("api", "operations"), ("store", backend.label), ("step", "perform"), ("code", "other")]
        )
        #expect(failures.totalValue == 1)
    }

    @Test("counters, quotas, holds, records, the ledger and lifecycles count their outcomes", arguments: storeBackends)
    func guardCounters(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.guards(store, backend) }
    }

    static func guards<S: Store>(_ store: S, _ backend: Backend) async throws {
        let metrics = TestMetrics()
        let observed = Observability(metricsFactory: metrics)
        let clock = ManualWallClock()
        func count(_ label: String, _ extra: [(String, String)] = []) throws -> Int64 {
            try metrics.expectCounter(label, [("store", backend.label)] + extra).totalValue
        }

        let counters = Counters(store: store, clock: clock, observability: observed)
        let stock = uniqueName("stock")
        try await counters.create(stock, value: 1)
        _ = try await counters.adjust(stock, by: -1)
        _ = try await counters.adjust(stock, by: -1)
        _ = try await counters.adjust(stock, by: -1)
        #expect(try count("unrace_counter_adjustments_total", [("result", "applied")]) == 1)
        #expect(try count("unrace_counter_adjustments_total", [("result", "refused")]) == 2)

        let quota = uniqueName("quota")
        for _ in 0..<3 { _ = try await counters.consume(quota, limit: 2, window: .seconds(60)) }
        #expect(try count("unrace_quota_requests_total", [("result", "granted")]) == 2)
        #expect(try count("unrace_quota_requests_total", [("result", "denied")]) == 1)

        let reservations = Reservations(store: store, clock: clock, observability: observed)
        let seat = uniqueName("seat")
        try await reservations.createResource(seat, capacity: 1)
        let (a, b, c) = (uniqueName("a"), uniqueName("b"), uniqueName("c"))
        _ = try await reservations.hold(seat, key: a, timeToLive: .seconds(10))
        _ = try await reservations.hold(seat, key: a, timeToLive: .seconds(10))
        _ = try await reservations.hold(seat, key: b, timeToLive: .seconds(10))
        clock.advance(by: .seconds(11))
        _ = try await reservations.hold(seat, key: c, timeToLive: .seconds(10))  // releases a's expired hold
        _ = try await reservations.confirm(key: a)
        _ = try await reservations.confirm(key: c)
        #expect(try count("unrace_hold_results_total", [("result", "held")]) == 2)
        #expect(try count("unrace_hold_results_total", [("result", "existing")]) == 1)
        #expect(try count("unrace_hold_results_total", [("result", "insufficient")]) == 1)
        #expect(try count("unrace_hold_results_total", [("result", "not_live")]) == 1)
        #expect(try count("unrace_hold_results_total", [("result", "confirmed")]) == 1)
        #expect(try count("unrace_holds_released_total", [("cause", "expired")]) == 1)

        let records = try Records(store: store, collection: uniqueName("wallets"), clock: clock, observability: observed)
        try await records.create("w", 100)
        try await records.write("w", 60, expectedVersion: 1)
        await #expect(throws: UnraceError.self) { try await records.write("w", 20, expectedVersion: 1) }
        #expect(try count("unrace_record_writes_total", [("result", "written")]) == 1)
        #expect(try count("unrace_record_writes_total", [("result", "conflict")]) == 1)

        var ledgerConfiguration = LedgerConfiguration()
        ledgerConfiguration.clock = clock
        let ledger = try Ledger(store: store, configuration: ledgerConfiguration, observability: observed)
        let (payer, payee) = (uniqueName("payer"), uniqueName("payee"))
        _ = try await ledger.createAccounts([
            Account(id: payer, ledger: 1, code: 1, flags: [.debitsMustNotExceedCredits]),
            Account(id: payee, ledger: 1, code: 1),
        ])
        let id = uniqueName("t")
        let transfer = Transfer(id: id, debit: payer, credit: payee, amount: 10)
        _ = try await ledger.submit([transfer])
        _ = try await ledger.submit([transfer])
        #expect(try count("unrace_ledger_transfers_total", [("result", "exceeds_credits")]) == 1)
        #expect(try count("unrace_ledger_transfers_total", [("result", "id_already_failed")]) == 1)
        let groups = try metrics.expectRecorder("unrace_ledger_group_size", [("store", backend.label)])
        #expect(groups.values == [1, 1])

        let lifecycle = try LifecycleGuard(
            store: store,
            lifecycle: OrderStreams.lifecycle,
            name: "order",
            clock: clock,
            observability: observed
        )
        let order = uniqueName("o")
        try await lifecycle.apply("OrderCreated", to: order)
        try await lifecycle.apply("PaymentCaptured", to: order)
        try await lifecycle.apply("OrderCreated", to: order)
        #expect(try count("unrace_lifecycle_events_total", [("lifecycle", "order"), ("decision", "moved")]) == 2)
        #expect(try count("unrace_lifecycle_events_total", [("lifecycle", "order"), ("decision", "rejected")]) == 1)
    }

    @Test("queue depth and inbox gaps are gauges, set when read", arguments: storeBackends)
    func gauges(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.gaugesRun(store, backend) }
    }

    static func gaugesRun<S: Store>(_ store: S, _ backend: Backend) async throws {
        let metrics = TestMetrics()
        let clock = ManualWallClock()
        var queueConfiguration = QueueConfiguration()
        queueConfiguration.clock = clock
        let name = uniqueName("q")
        let queue = try MessageQueue(
            store: store,
            name: name,
            configuration: queueConfiguration,
            observability: Observability(metricsFactory: metrics)
        )
        _ = try await queue.enqueue([OutgoingMessage(id: "m1", payload: []), OutgoingMessage(id: "m2", payload: [])])
        _ = try await queue.lease(limit: 1, worker: "w")
        #expect(try await queue.depth() == QueueDepth(ready: 1, leased: 1))
        func gauge(_ state: String) throws -> Double? {
            try metrics.expectGauge("unrace_queue_messages", [("queue", name), ("store", backend.label), ("state", state)]).lastValue
        }
        #expect(try gauge("ready") == 1)
        #expect(try gauge("leased") == 1)
        #expect(try gauge("dead") == 0)

        var inboxConfiguration = InboxConfiguration()
        inboxConfiguration.clock = clock
        inboxConfiguration.gapTimeout = .seconds(1)
        let inbox = try Inbox(store: store, configuration: inboxConfiguration, observability: Observability(metricsFactory: metrics))
        let stream = uniqueName("s")
        for sequence: Int64 in [3, 4] {
            _ = try await inbox.receive(try InboxEvent(id: "\(stream)-\(sequence)", stream: stream, sequence: sequence, type: "T")) {
                _,
                _ in .applied
            }
        }
        clock.advance(by: .seconds(2))
        #expect(try await inbox.gaps().count == 1)
        #expect(try metrics.expectGauge("unrace_inbox_gap_streams", [("store", backend.label)]).lastValue == 1)
        #expect(try metrics.expectGauge("unrace_inbox_gap_parked_events", [("store", backend.label)]).lastValue == 2)
    }

    @Test("a takeover logs a notice and a fenced write a warning, with the key hashed or omitted, never written", arguments: storeBackends)
    func takeoverAndFencingLogs(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.takeoverLogs(store, backend) }
    }

    static func takeoverLogs<S: Store>(_ store: S, _ backend: Backend) async throws {
        for keys in [KeyLogging.hashed, .omitted] {
            let log = LogRecorder()
            let clock = ManualWallClock()
            var configuration = OperationsConfiguration()
            configuration.clock = clock
            configuration.lease = .seconds(5)
            let operations = try Operations(
                store: store,
                configuration: configuration,
                observability: Observability(logger: log.logger, keys: keys)
            )
            let key = Self.secret + "-\(keys)"
            guard case .acquired(let stalled) = try await operations.begin(key: key) else {
                Issue.record("no claim")
                return
            }
            clock.advance(by: .seconds(6))
            guard case .acquired(let successor) = try await operations.begin(key: key) else {
                Issue.record("no takeover")
                return
            }
            await #expect(throws: UnraceError.self) { try await operations.complete(stalled, result: 1) }
            try await operations.complete(successor, result: 2)

            let entries = log.entries
            let takeover = entries.filter { $0.level == .notice && $0.message.contains("taken over") }
            let fenced = entries.filter { $0.level == .warning && $0.message.contains("fenced") }
            #expect(takeover.count == 1)
            #expect(fenced.count == 1)
            #expect(takeover.first?.metadata["token"] == "2")
            #expect(fenced.first?.metadata["token"] == "1")
            for entry in entries {
                #expect(!entry.description.contains("4242"), "a log line carries the key: \(entry.description)")
            }
            switch keys {
            case .hashed:
                let hash = Telemetry.hash(scope: Scope.default.rawValue, key: key)
                // SHA-256("default\0order-4242-secret-hashed"), first 12 hex digits (Python's hashlib).
                #expect(hash == "95c03e3e8cc3")
                #expect(takeover.first?.metadata["key_hash"] == "\(hash)")
                #expect(fenced.first?.metadata["key_hash"] == "\(hash)")
            case .omitted:
                #expect(entries.allSatisfy { $0.metadata["key_hash"] == nil })
            }
        }
    }

    @Test("a fenced queue ack logs a warning without the message id", arguments: storeBackends)
    func queueFencingLogs(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.queueLogs(store, backend) }
    }

    static func queueLogs<S: Store>(_ store: S, _ backend: Backend) async throws {
        let log = LogRecorder()
        let clock = ManualWallClock()
        var configuration = QueueConfiguration()
        configuration.clock = clock
        configuration.visibilityTimeout = .seconds(1)
        let queue = try MessageQueue(
            store: store,
            name: uniqueName("q"),
            configuration: configuration,
            observability: Observability(logger: log.logger)
        )
        _ = try await queue.enqueue([OutgoingMessage(id: Self.secret, payload: [])])
        let first = try await queue.lease(limit: 1, worker: "a")
        clock.advance(by: .seconds(2))
        _ = try await queue.lease(limit: 1, worker: "b")
        await #expect(throws: UnraceError.self) { try await queue.ack(first[0]) }
        let warnings = log.entries.filter { $0.level == .warning }
        #expect(warnings.count == 1)
        #expect(warnings.first?.metadata["attempt"] == "1")
        #expect(warnings.first?.metadata["key_hash"] != nil)
        #expect(log.entries.allSatisfy { !$0.description.contains("4242") })
    }
}

extension ObservabilityTests {
    @Test("an update that met a version conflict counts one retry and logs one notice with its attempts")
    func updateRetryIsCountedAndLogged() async throws {
        let metrics = TestMetrics()
        let log = LogRecorder()
        let store = InterferingStore(inner: MemoryStore())
        let records = try Records(
            store: store,
            collection: "wallets",
            observability: Observability(logger: log.logger, metricsFactory: metrics)
        )
        try await records.create(Self.secret, 100)
        store.interfere.withLock { $0 = true }  // the next write step finds the record moved on
        let updated = try await records.update(Self.secret, as: Int.self) { $0 -= 40 }
        #expect(updated.version == 3)  // the interfering write made 2; the retry made 3
        #expect(try metrics.expectCounter("unrace_record_retries_total", [("store", "memory")]).totalValue == 1)
        #expect(try metrics.expectCounter("unrace_record_writes_total", [("store", "memory"), ("result", "conflict")]).totalValue == 1)
        let notices = log.entries.filter { $0.level == .notice }
        #expect(notices.count == 1)
        #expect(notices.first?.metadata["attempts"] == "2")
        #expect(log.entries.allSatisfy { !$0.description.contains("4242") })
    }
}

extension ObservabilityTests {
    @Test("metrics name a store by its backendName: memory, or a custom store's type name")
    func storeLabel() async throws {
        let metrics = TestMetrics()
        let custom = ContextRecordingStore(inner: MemoryStore())
        let counters = Counters(store: custom, observability: Observability(metricsFactory: metrics))
        _ = try await counters.create("c", value: 0)
        #expect(custom.backendName == "ContextRecordingStore")
        #expect(MemoryStore().backendName == "memory")
        let timer = try metrics.expectTimer(
            "unrace_step_duration_seconds",
            [("api", "counters"), ("store", "ContextRecordingStore"), ("step", "createCounter")]
        )
        #expect(!timer.values.isEmpty)
    }
}

extension ObservabilityTests {
    @Test(
        "with nothing bootstrapped, metric handles are one shared no-op each and steps make no span; a real factory and tracer get theirs"
    )
    func noOpObservabilityIsSkipped() async throws {
        let quiet = MetricHandles(factory: NOOPMetricsHandler.instance)
        #expect(quiet.isNoOp)
        #expect(quiet.counter("a", []) === quiet.counter("b", [("store", "memory")]))
        let metrics = TestMetrics()
        let real = MetricHandles(factory: metrics)
        #expect(!real.isNoOp)
        #expect(real.counter("a", []) === real.counter("a", []) && real.counter("a", []) !== real.counter("b", []))
        // The fast path runs the step bare: no service context is pushed around it.
        let store = ContextRecordingStore(inner: MemoryStore())
        let silent = Telemetry(api: "counters", store: store, observability: Observability(), metricsFactory: NOOPMetricsHandler.instance)
        #expect(!silent.isTracing)
        let answer = try await silent.step(store, StepInfo("probe", "", clock: SystemWallClock(), isReadOnly: true)) { _ in 42 }
        #expect(answer == 42)
        #expect(store.seen.withLock { $0 } == [false])
        let tracer = InMemoryTracer()
        let traced = Telemetry(api: "counters", store: store, observability: Observability(metricsFactory: metrics, tracer: tracer))
        #expect(traced.isTracing)
        _ = try await traced.step(store, StepInfo("probe", "", clock: SystemWallClock(), isReadOnly: true)) { _ in 42 }
        #expect(store.seen.withLock { $0 } == [false, true])
        #expect(tracer.finishedSpans.map(\.operationName) == ["unrace.step.probe"])
        #expect(
            try metrics.expectTimer(
                "unrace_step_duration_seconds",
                [("api", "counters"), ("store", "ContextRecordingStore"), ("step", "probe")]
            ).values
                .count == 1
        )
    }
}
