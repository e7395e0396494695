import Fluent
import FluentSQLiteDriver
import Foundation
import Logging
import Testing
import UnraceSQLite
import UnraceVapor
import Vapor

/// The Vapor adapter's own edges: what `req.unrace.db` is when the middleware's store is not a
/// Fluent one, and the headers of a thrown `Abort`.
@Suite("Vapor middleware edges", .timeLimit(.minutes(10)))
struct VaporMiddlewareTests {
    final class Note: Model, @unchecked Sendable {
        // @unchecked: a Fluent model; each request uses its own.
        static let schema = "notes"
        @ID(custom: "id", generatedBy: .user) var id: String?
        init() {}
        init(id: String) { self.id = id }
    }

    struct CreateNotes: AsyncMigration {
        func prepare(on database: any Database) async throws {
            try await database.schema(Note.schema).field("id", .string, .identifier(auto: false)).create()
        }
        func revert(on database: any Database) async throws { try await database.schema(Note.schema).delete() }
    }

    /// A Vapor app on a fresh SQLite file that answers errors as problems, with `routes` added,
    /// served on a free loopback port for the duration of `body`.
    static func withApp(
        _ routes: @escaping (Application, URL) async throws -> Void,
        _ body: (Application, LiveClient) async throws -> Void
    ) async throws {
        // swift-format-ignore: OnlyOneTrailingClosureArgument
        try await withVaporApp(
            migration: CreateNotes(),
            configure: { app, folder in
                app.middleware = .init()
                app.middleware.use(ProblemMiddleware())
                try await routes(app, folder)
            }
        ) { app, client, _ in try await body(app, client) }
    }

    @Test("under a middleware on SQLiteStore, req.unrace.db refuses to write (invalid_configuration) instead of writing outside the claim")
    func unraceDBOutsideFluent() async throws {
        // swift-format-ignore: OnlyOneTrailingClosureArgument
        try await Self.withApp({ app, folder in
            let store = try await SQLiteStore(path: folder.appendingPathComponent("unrace.sqlite").path)
            let operations = try Operations(store: store)
            app.grouped(try IdempotencyMiddleware(operations: operations, principal: { _ in "everyone" })).post("notes") {
                req async throws -> HTTPStatus in
                try await Note(id: "n-1").create(on: req.unrace.db)
                return .created
            }
        }) { app, client in
            let first = try await client.send(.POST, "/notes", headers: [("Idempotency-Key", "\"n\"")], json: "{}")
            #expect(first.status == 500 && first.problemCode == "internal_error")
            #expect(try await Note.query(on: app.db).count() == 0, "no write outside the claim's transaction")
        }
    }

    @Test("an app with no Fluent database at all, on SQLiteStore: req.unrace.db refuses (500), the process does not trap")
    func unraceDBWithoutFluent() async throws {
        // swift-format-ignore: OnlyOneTrailingClosureArgument
        try await withVaporApp(
            migration: nil,
            configure: { app, folder in
                app.middleware = .init()
                app.middleware.use(ProblemMiddleware())
                let operations = try Operations(store: try await SQLiteStore(path: folder.appendingPathComponent("unrace.sqlite").path))
                app.grouped(try IdempotencyMiddleware(operations: operations, principal: { _ in "everyone" })).post("notes") {
                    req async throws -> HTTPStatus in
                    try await Note(id: "n-1").create(on: req.unrace.db)
                    return .created
                }
            }
        ) { _, client, _ in
            let answer = try await client.send(.POST, "/notes", headers: [("Idempotency-Key", "\"n\"")], json: "{}")
            #expect(answer.status == 500 && answer.problemCode == "internal_error", "\(answer.status) \(answer.body)")
        }
    }

    @Test("a thrown Abort's headers (WWW-Authenticate) are in the answer and in its replay")
    func abortHeaders() async throws {
        // swift-format-ignore: OnlyOneTrailingClosureArgument
        try await Self.withApp({ app, _ in
            let store = try await FluentStore(databases: app.databases, logger: app.logger)
            let operations = try Operations(store: store)
            app.grouped(try IdempotencyMiddleware(operations: operations, principal: { _ in "everyone" })).post("notes") {
                _ async throws -> HTTPStatus in
                throw Abort(.unauthorized, headers: ["WWW-Authenticate": "Bearer realm=\"notes\""])
            }
        }) { _, client in
            for attempt in 0..<2 {
                let answer = try await client.send(.POST, "/notes", headers: [("Idempotency-Key", "\"a\"")], json: "{}")
                #expect(answer.status == 401, "attempt \(attempt)")
                #expect(answer.headers.first(name: "WWW-Authenticate") == "Bearer realm=\"notes\"", "attempt \(attempt)")
                #expect(answer.isReplay == (attempt == 1))
            }
        }
    }

    @Test("the application's body limit (app.routes.defaultMaxBodySize) holds on an idempotent route: 413, nothing runs, nothing is stored")
    func applicationBodyLimit() async throws {
        let runs = Counter()
        // swift-format-ignore: OnlyOneTrailingClosureArgument
        try await Self.withApp({ app, _ in
            app.routes.defaultMaxBodySize = "1kb"
            let store = try await FluentStore(databases: app.databases, logger: app.logger)
            let operations = try Operations(store: store)
            app.grouped(try IdempotencyMiddleware(operations: operations, principal: { _ in "everyone" })).post("notes") {
                _ async throws -> HTTPStatus in
                runs.increment()
                return .created
            }
        }) { _, client in
            let large = "{\"note\":\"" + String(repeating: "x", count: 2_000) + "\"}"
            let refused = try await client.send(.POST, "/notes", headers: [("Idempotency-Key", "\"big\"")], json: large)
            #expect(refused.status == 413 && refused.body.contains("larger than 1024 bytes"), "\(refused.body)")
            #expect(runs.value == 0)
            let small = try await client.send(.POST, "/notes", headers: [("Idempotency-Key", "\"big\"")], json: "{}")
            #expect(small.status == 201 && !small.isReplay, "the refused request stored nothing under its key")
        }
    }

    @Test(
        "a route status HTTP cannot send (NIO's .custom code 1000 or UInt.max), thrown or returned, answers 500; the server does not trap"
    )
    func statusBeyondHTTP() async throws {
        // swift-format-ignore: OnlyOneTrailingClosureArgument
        try await Self.withApp({ app, _ in
            let store = try await FluentStore(databases: app.databases, logger: app.logger)
            let operations = try Operations(store: store)
            app.post("thrown") { _ async throws -> HTTPStatus in throw Abort(.custom(code: 1000, reasonPhrase: "x")) }
            app.post("huge") { _ async throws -> HTTPStatus in throw Abort(.custom(code: UInt.max, reasonPhrase: "x")) }
            app.grouped(try IdempotencyMiddleware(operations: operations, principal: { _ in "everyone" })).post("returned") {
                _ async throws -> Response in
                Response(status: .custom(code: 1000, reasonPhrase: "x"))
            }
        }) { _, client in
            for path in ["/thrown", "/huge"] {
                let thrown = try await client.send(.POST, path, json: "{}")
                #expect(thrown.status == 500, "\(path): \(thrown.status) \(thrown.body)")
            }
            for attempt in 0..<2 {
                let returned = try await client.send(.POST, "/returned", headers: [("Idempotency-Key", "\"r\"")], json: "{}")
                #expect(returned.status == 500, "attempt \(attempt): \(returned.status) \(returned.body)")
            }
        }
    }
}
