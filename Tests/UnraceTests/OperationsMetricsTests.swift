import MetricsTestKit
import Synchronization
import Testing
import Unrace
import UnraceHTTP

/// The counters `Operations` keeps, read back from swift-metrics' test factory after a scripted run.
@Suite("Operations metrics")
struct OperationsMetricsTests {
    struct Refused: Error {}

    @Test(
        "N duplicates → N replays; a takeover → one taken_over and one fenced write; mismatches, waits and body failures counted",
        arguments: storeBackends
    )
    func counters(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.scripted(store, backend) }
    }

    static func scripted<S: Store>(_ store: S, _ backend: Backend) async throws {
        let metrics = TestMetrics()
        let clock = ManualWallClock()
        var configuration = OperationsConfiguration()
        configuration.metricsFactory = metrics
        configuration.clock = clock
        configuration.lease = .seconds(5)
        let operations = try Operations(store: store, configuration: configuration)
        let scope = try Scope(uniqueName("metrics"))

        _ = try await operations.perform(key: "k", scope: scope) { _ in 1 }
        for _ in 0..<5 { _ = try await operations.perform(key: "k", scope: scope) { _ in 2 } }
        _ = try await operations.perform(key: "m", scope: scope, fingerprint: .text("a")) { _ in 1 }
        await #expect(throws: UnraceError.self) {
            try await operations.perform(key: "m", scope: scope, fingerprint: .text("b")) { _ in 1 }
        }
        await #expect(throws: Refused.self) {
            try await operations.perform(key: "f", scope: scope) { _ -> Int in throw Refused() }
        }
        // A holder that stalls past its lease is taken over; its late completion is fenced.
        guard case .acquired(let stalled) = try await operations.begin(key: "t", scope: scope) else {
            Issue.record("no claim")
            return
        }
        guard case .inProgress = try await operations.begin(key: "t", scope: scope) else {
            Issue.record("not in progress")
            return
        }
        clock.advance(by: .seconds(6))
        guard case .acquired(let successor) = try await operations.begin(key: "t", scope: scope) else {
            Issue.record("no takeover")
            return
        }
        await #expect(throws: UnraceError.self) { try await operations.complete(stalled, result: 1) }
        try await operations.complete(successor, result: 2)
        // The successor's complete sent again (as after outcome_unknown, when the first had
        // committed): done already, its body not run again; a fail after it is refused, saying the
        // holder ended it another way. Neither is counted as a takeover.
        let ranAgain = Atomic<Int>(0)
        try await operations.complete(successor, result: 3) { _ in ranAgain.add(1, ordering: .relaxed) }
        #expect(
            try await operations.complete(successor) { _ -> Int in
                ranAgain.add(1, ordering: .relaxed)
                return 4
            } == 2,
            "the stored result"
        )
        #expect(ranAgain.load(ordering: .relaxed) == 0)
        guard case .completed(let done) = try await operations.status(of: "t", scope: scope), try done.value(as: Int.self) == 2 else {
            Issue.record("the first completion stands")
            return
        }
        do {
            try await operations.fail(successor, reason: .terminal("late"))
            Issue.record("a fail after the holder's own complete is refused")
        } catch let error as UnraceError {
            #expect(error.code == .fenced && error.message.hasPrefix("this holder's operation already ended"), "\(error.message)")
        }
        // A lease that ran out is still reported in progress, with its end in the past: the next
        // claim takes it over.
        guard case .acquired = try await operations.begin(key: "s", scope: scope) else {
            Issue.record("no claim of s")
            return
        }
        clock.advance(by: .seconds(6))
        guard case .inProgress(_, let leaseUntil) = try await operations.status(of: "s", scope: scope) else {
            Issue.record("s is not reported in progress")
            return
        }
        #expect(leaseUntil < clock.now())

        let store = backend.label
        func count(_ label: String, _ result: String? = nil) throws -> Int64 {
            var dimensions = [("scope", scope.rawValue), ("store", store)]
            if let result { dimensions.append(("result", result)) }
            return try metrics.expectCounter(label, dimensions).totalValue
        }
        // k, m, t's first holder and s; f's body threw, so its claim never completed and counts as a body failure.
        #expect(try count("unrace_operation_claims_total", "acquired") == 4)
        #expect(try count("unrace_operation_claims_total", "replayed") == 5)
        #expect(try count("unrace_operation_claims_total", "mismatch") == 1)
        #expect(try count("unrace_operation_claims_total", "in_progress") == 1)
        #expect(try count("unrace_operation_claims_total", "taken_over") == 1)
        #expect(try count("unrace_operation_fenced_total") == 1)
        #expect(try count("unrace_operation_body_failures_total") == 1)
    }

    @Test(
        "a fenced error the holder's own body throws is not a takeover: not counted or logged as one, the key still held",
        arguments: storeBackends
    )
    func bodyFencedIsNotTakeover(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.bodyFenced(store) }
    }

    static func bodyFenced<S: Store>(_ store: S) async throws {
        let metrics = TestMetrics()
        var configuration = OperationsConfiguration()
        configuration.metricsFactory = metrics
        configuration.clock = ManualWallClock()
        let operations = try Operations(store: store, configuration: configuration)
        let scope = try Scope(uniqueName("bodyfenced"))
        guard case .acquired(let handle) = try await operations.begin(key: "k", scope: scope) else {
            Issue.record("no claim")
            return
        }
        // What a queue delivery acked in the same transaction throws once it was redelivered.
        let fromBody = UnraceError(.fenced, "the body's own fenced write")
        for write in 0..<2 {
            let error = await #expect(throws: UnraceError.self) {
                if write == 0 {
                    _ = try await operations.complete(handle, result: 1) { _ in throw fromBody }
                } else {
                    try await operations.fail(handle, reason: .retryable) { _ in throw fromBody }
                }
            }
            #expect(error?.message == fromBody.message)
        }
        #expect(metrics.counters(label: "unrace_operation_fenced_total").allSatisfy { $0.totalValue == 0 })
        guard case .inProgress = try await operations.status(of: "k", scope: scope) else {
            Issue.record("the key is no longer held")
            return
        }
        // The holder still holds it: its completion goes through.
        try await operations.complete(handle, result: 2)
        guard case .completed(let done) = try await operations.status(of: "k", scope: scope) else {
            Issue.record("not completed")
            return
        }
        #expect(try done.value(as: Int.self) == 2)
    }

    @Test("by default every per-client (principal) scope is one `principal` series; other scopes keep their name")
    func principalScopesShareOneLabel() async throws {
        let metrics = TestMetrics()
        var configuration = OperationsConfiguration()
        configuration.metricsFactory = metrics
        let operations = try Operations(store: MemoryStore(), configuration: configuration)
        for principal in ["alice", "bob", "carol"] {
            let scope = try #require(PrincipalScope.scope(for: principal))
            _ = try await operations.perform(key: "k", scope: scope) { _ in 1 }
        }
        let own = try Scope(uniqueName("own"))
        _ = try await operations.perform(key: "k", scope: own) { _ in 1 }
        let labels = Set(
            metrics.counters(label: "unrace_operation_claims_total").flatMap { $0.dimensions.filter { $0.0 == "scope" }.map(\.1) }
        )
        #expect(labels == ["principal", own.rawValue])
        #expect(
            try metrics.expectCounter(
                "unrace_operation_claims_total",
                [("scope", "principal"), ("store", "memory"), ("result", "acquired")]
            ).totalValue == 3
        )
    }

    @Test("a terminal failure's reason over the outcome limit is invalid_argument and leaves the key held", arguments: storeBackends)
    func terminalReasonBounded(_ backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.terminalReason(store) }
    }

    static func terminalReason<S: Store>(_ store: S) async throws {
        let operations = try Operations(store: store)
        let scope = try Scope(uniqueName("reason"))
        guard case .acquired(let handle) = try await operations.begin(key: "k", scope: scope) else {
            Issue.record("no claim")
            return
        }
        let reason = repeatedASCII("x", count: OperationsConfiguration.outcomeByteCountMaximum + 1)
        let error = await #expect(throws: UnraceError.self) { try await operations.fail(handle, reason: .terminal(reason)) }
        #expect(error?.code == .invalidArgument)
        guard case .inProgress = try await operations.status(of: "k", scope: scope) else {
            Issue.record("the refused reason changed the record")
            return
        }
        try await operations.fail(handle, reason: .terminal("declined"))
        guard case .completed(let done) = try await operations.status(of: "k", scope: scope) else {
            Issue.record("not completed")
            return
        }
        #expect(done.failureReason == "declined")
    }
}
