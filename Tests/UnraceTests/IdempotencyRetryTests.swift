import HTTPTypes
import Synchronization
import Testing
import Unrace
import UnraceHTTP
import UnraceSQL

/// The idempotency engine keeps a handler's own errors apart from its rules' verdicts without
/// hiding from the store what the store retries: a serialization failure or deadlock under a
/// handler on PostgreSQL still sends the whole step round again.
@Suite(
    "Idempotent handlers and step retries",
    .timeLimit(.minutes(10)),
    .enabled(if: TestPostgres.required, "needs PostgreSQL (scripts/test starts one)")
)
struct IdempotencyRetryTests {
    @Test(
        "on PostgreSQL a serialization failure under an idempotent handler retries the step whole: 201, the handler ran twice, its row once",
        arguments: ["40001", "40P01"]
    )
    func retriedUnderHandler(sqlState: String) async throws {
        try await withStore(.postgres) { store, _ in try await Self.retried(store, sqlState: sqlState) }
    }

    static func retried<S: SQLStore>(_ store: S, sqlState: String) async throws {
        let table = uniqueName("orders")
        try await store.withTransaction { tx in try await tx.execute("CREATE TABLE \(table) (id TEXT PRIMARY KEY)") }
        let engine = try IdempotencyEngine(operations: try Operations(store: store))
        let attempts = Atomic<Int>(0)
        let request = HTTPRequest(method: .post, scheme: "http", authority: "shop", path: "/orders", headerFields: [.idempotencyKey: "k"])
        let handler: (S.Transaction) async throws -> IdempotencyEngine<S>.HandlerResponse = { tx in
            try await tx.execute("INSERT INTO \(table) (id) VALUES ('order-1')")
            if attempts.add(1, ordering: .relaxed).newValue == 1 {
                // What PostgreSQL answers a transaction that lost a race: the store retries it.
                try await tx.execute("DO $$BEGIN RAISE EXCEPTION 'provoked' USING ERRCODE = '\(sqlState)'; END$$")
            }
            return .init(head: HTTPResponse(status: .created), body: Array("ok".utf8))
        }
        let outcome = try await engine.respond(to: request, principal: "alice", body: { [] }, handler: handler)
        guard case .respond(let response) = outcome else {
            Issue.record("the engine let the request pass through")
            return
        }
        #expect(response.status == .created, "\(response.status) \(String(decoding: response.body, as: UTF8.self))")
        #expect(attempts.load(ordering: .relaxed) == 2)
        #expect(try await countRows(store, table) == 1)
    }
}
