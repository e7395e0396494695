import HTTPTypes
import Testing
import Unrace
import UnraceHTTP
import UnraceSQL

/// A handler's thrown HTTP error is stored under the claim it ran under (``WhileInProgress/wait(upTo:)``):
/// its writes roll back, the error response commits in the same step, and no duplicate runs the
/// handler — DESIGN: "a duplicate — completed, in flight or concurrent — never runs it".
@Suite("Idempotent handlers that throw", .timeLimit(.minutes(10)))
struct IdempotencyThrownTests {
    static func request(_ key: String) -> HTTPRequest {
        HTTPRequest(method: .post, scheme: "http", authority: "shop", path: "/orders", headerFields: [.idempotencyKey: key])
    }

    static let conflict = IdempotencyEngine<MemoryStore>.HandlerResponse(
        head: HTTPResponse(status: .conflict),
        body: Array("coupon already redeemed".utf8),
        thrown: true
    )

    @Test(
        "32 concurrent duplicates of a request whose handler throws 409: the handler runs once, 31 replay the 409",
        arguments: storeBackends
    )
    func concurrentDuplicates(backend: Backend) async throws {
        try await withAnyStore(backend) { store in try await Self.concurrentDuplicates(store) }
    }

    static func concurrentDuplicates<S: Store>(_ store: S) async throws {
        let engine = try IdempotencyEngine(operations: try Operations(store: store))
        let runs = Counter()
        let key = uniqueName("thrown")
        let statuses = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for _ in 0..<32 {
                group.addTask {
                    let outcome = try await engine.respond(
                        to: Self.request(key),
                        principal: "alice",
                        body: { [] },
                        handler: { _ in
                            runs.increment()
                            await Task.yield()
                            return .init(head: Self.conflict.head, body: Self.conflict.body, thrown: true)
                        }
                    )
                    guard case .respond(let response) = outcome else { return (0, false) }
                    return (response.status.code, response.headerFields[.idempotentReplayed] == "true")
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(runs.value == 1, "the handler ran once for one key")
        #expect(statuses.allSatisfy { $0.0 == 409 }, "\(statuses)")
        #expect(statuses.filter(\.1).count == 31)
    }

    /// The same interleaving, forced: the first request's handler throws, then a duplicate
    /// arrives. Storing the error in a second step (the naive way) leaves the key free between
    /// the two steps, and the duplicate runs the handler. The engine takes one step per request
    /// that throws — no gap for a duplicate — and the duplicate replays.
    @Test(
        "a duplicate arriving right after the handler threw: the naive two steps run the handler again; the engine takes one step, and replays"
    )
    func forcedInterleaving() async throws {
        let store = CountingStore(base: MemoryStore())
        let operations = try Operations(store: store)
        let stored = StoredResponse(HTTPResponse(status: .conflict), body: .init("coupon already redeemed".utf8))
        struct Thrown: Error {}
        // Naive: the thrown error rolls the claim back; the error is stored by a later step.
        let naiveRuns = Counter()
        await #expect(throws: Thrown.self) {
            try await operations.perform(key: "naive") { (_: MemoryTransaction) -> StoredResponse in
                naiveRuns.increment()
                throw Thrown()
            }
        }
        _ = try await operations.perform(key: "naive") { _ in
            naiveRuns.increment()  // the duplicate, in the gap
            return stored
        }
        #expect(naiveRuns.value == 2, "the anomaly: a duplicate ran the handler")
        // The engine: one step for the request whose handler threw, then the duplicate replays.
        let engine = try IdempotencyEngine(operations: operations)
        let runs = Counter()
        for attempt in 0..<2 {
            let before = store.steps.value
            let outcome = try await engine.respond(
                to: Self.request("guarded"),
                principal: "alice",
                body: { [] },
                handler: { tx in
                    runs.increment()
                    tx.put("orders", id: "o1", [1])
                    return .init(head: Self.conflict.head, body: Self.conflict.body, thrown: true)
                }
            )
            guard case .respond(let response) = outcome else {
                Issue.record("passed through")
                return
            }
            #expect(response.status == .conflict)
            #expect(store.steps.value - before == 1, "attempt \(attempt): one step, so no gap between the claim and the stored error")
        }
        #expect(runs.value == 1)
        #expect(store.base.rows(in: "orders").isEmpty, "the thrown handler's write rolled back")
    }

    /// A store that counts the steps it runs.
    struct CountingStore<Base: Store>: Store {
        typealias Transaction = Base.Transaction
        let base: Base
        let steps = Counter()
        /// A wrapper answers as the store it wraps.
        var runsStepsConcurrently: Bool { base.runsStepsConcurrently }

        func step<T: Sendable>(_ step: StepInfo, _ body: (StepContext<Base.Transaction>) async throws -> T) async throws -> T {
            steps.increment()
            return try await base.step(step, body)
        }

        func withTransaction<T: Sendable>(_ body: (Base.Transaction) async throws -> T) async throws -> T {
            try await base.withTransaction(body)
        }
    }

    /// On SQL the handler's writes roll back to the savepoint taken after the claim — also after
    /// a statement of its own failed, which leaves a PostgreSQL transaction unusable until then.
    @Test(
        "a SQL handler that hit a unique violation and threw 409: its insert rolls back, the 409 is stored and replayed",
        arguments: sqlBackends
    )
    func sqlRollback(_ backend: SQLBackend) async throws {
        try await withStore(backend) { store, _ in try await Self.sqlRollback(store) }
    }

    static func sqlRollback<S: SQLStore>(_ store: S) async throws {
        let table = uniqueName("coupons")
        try await store.withTransaction { tx in
            try await tx.execute("CREATE TABLE \(table) (code TEXT PRIMARY KEY, note TEXT)")
            try await tx.execute("INSERT INTO \(table) (code, note) VALUES ('SPRING', 'redeemed before')")
        }
        let engine = try IdempotencyEngine(operations: try Operations(store: store))
        let runs = Counter()
        for _ in 0..<3 {
            let outcome = try await engine.respond(
                to: Self.request("sql"),
                principal: "alice",
                body: { [] },
                handler: { tx in
                    runs.increment()
                    try await tx.execute("INSERT INTO \(table) (code, note) VALUES ('OTHER', 'by the handler')")
                    // Queued for the commit on SQLite: rolled back with the rest.
                    try await tx.executeBeforeCommit("INSERT INTO \(table) (code, note) VALUES ('QUEUED', 'by the handler')", [])
                    do {
                        try await tx.execute("INSERT INTO \(table) (code, note) VALUES ('SPRING', 'again')")
                        return .init(head: HTTPResponse(status: .created), body: [])
                    } catch let error as UnraceError where error.code == .constraintViolation {
                        return .init(head: HTTPResponse(status: .conflict), body: Array("already redeemed".utf8), thrown: true)
                    }
                }
            )
            guard case .respond(let response) = outcome else {
                Issue.record("passed through")
                return
            }
            #expect(response.status == .conflict)
            #expect(String(decoding: response.body, as: UTF8.self) == "already redeemed")
        }
        #expect(runs.value == 1)
        #expect(try await countRows(store, table) == 1, "the handler's own insert rolled back with it")
    }

    /// ``WhileInProgress/conflict``: a request paused past its lease between its claim and its
    /// completion (a stalled process) is taken over by a retry; when it goes on it is fenced. It
    /// answers 409 (the key is the other's), never a 500, writes nothing, and the key replays
    /// the retry's response.
    @Test("conflict mode: a request taken over past its lease answers 409 when it is fenced; the key replays the retry's response")
    func fencedAnswers409() async throws {
        let clock = ManualWallClock()
        let store = GatedStore(base: MemoryStore(), gatedStep: "complete")
        var configuration = OperationsConfiguration()
        configuration.clock = clock
        configuration.lease = .seconds(5)
        let operations = try Operations(store: store, configuration: configuration)
        var idempotency = IdempotencyConfiguration()
        idempotency.whileInProgress = .conflict
        let engine = try IdempotencyEngine(operations: operations, configuration: idempotency)
        let handlerRuns = Counter()
        func send(_ body: String) async throws -> EngineResponse? {
            let outcome = try await engine.respond(
                to: Self.request("slow"),
                principal: "alice",
                body: { [] },
                handler: { tx in
                    handlerRuns.increment()
                    tx.put("orders", id: body, [1])
                    return .init(head: HTTPResponse(status: .created), body: Array(body.utf8))
                }
            )
            guard case .respond(let response) = outcome else { return nil }
            return response
        }
        // The first request claims the key, then stalls before its completion step.
        let slow = Task { try await send("first") }
        await store.arrived.wait()
        clock.advance(by: .seconds(6))
        // A retry takes the key over (its claim is not gated), then waits at the same gate.
        let retry = Task { try await send("retry") }
        let scope = try #require(PrincipalScope.scope(for: "alice"))
        try await within(.seconds(60), "the retry's takeover") {
            while try await store.base.record(scope: scope, key: OperationKey("slow"))?.token != FencingToken(2) { await Task.yield() }
        }
        store.gate.open()
        let fenced = try #require(try await slow.value)
        #expect(fenced.status == .conflict, "\(fenced.status) \(String(decoding: fenced.body, as: UTF8.self))")
        let retried = try #require(try await retry.value)
        #expect(retried.status == .created && String(decoding: retried.body, as: UTF8.self) == "retry")
        #expect(store.base.rows(in: "orders").keys.sorted() == ["retry"], "the fenced request wrote nothing")
        let replayed = try #require(try await send("third"))
        #expect(replayed.status == .created && String(decoding: replayed.body, as: UTF8.self) == "retry")
        #expect(replayed.headerFields[.idempotentReplayed] == "true")
    }
}
