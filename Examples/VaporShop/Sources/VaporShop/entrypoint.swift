import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Logging
import UnraceVapor
import Vapor

/// The shop: `swift run VaporShop serve --hostname 127.0.0.1 --port 8080`. SQLite (`vaporshop.sqlite`,
/// or `SQLITE_PATH`) by default; PostgreSQL with `DATABASE_URL=postgres://…`. `UNRACE_IDEMPOTENCY=off`
/// serves `POST /orders` without the middleware, to see what retries do without it. A connection on
/// which nothing is read or written for `IDLE_TIMEOUT_SECONDS` (60 by default — longer than a step's
/// 30 s timeout, so a slow request gets its answer —, 1 to 3600) is closed, so a client
/// that stops half way through a body cannot hold the server. `VaporShop bench` measures what the
/// middleware costs.
@main
enum Entrypoint {
    static func main() async throws {
        var environment = try Environment.detect()
        try LoggingSystem.bootstrap(from: &environment)
        let app = try await Application.make(environment)
        do {
            if environment.arguments.dropFirst().first == "bench" {
                app.asyncCommands.use(BenchCommand(), as: "bench")  // the bench starts shops of its own
            } else {
                try await configure(app)
            }
            try await app.execute()
        } catch {
            app.logger.report(error: error)
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    static func configure(_ app: Application) async throws {
        let idle = Environment.get("IDLE_TIMEOUT_SECONDS").map { Int64($0) } ?? 60
        guard let idle, (1...3_600).contains(idle) else {
            throw Abort(.internalServerError, reason: "IDLE_TIMEOUT_SECONDS must be a whole number of seconds from 1 to 3600")
        }
        app.http.server.configuration.idleTimeout = .seconds(idle)
        try await configure(
            app,
            idempotency: Environment.get("UNRACE_IDEMPOTENCY") != "off",
            sqlitePath: Environment.get("SQLITE_PATH") ?? "vaporshop.sqlite"
        )
    }

    /// The shop on `DATABASE_URL`'s PostgreSQL, or else the SQLite file at `sqlitePath`;
    /// `POST /orders` under ``IdempotencyMiddleware`` when `idempotency` is on.
    static func configure(_ app: Application, idempotency: Bool, sqlitePath: String) async throws {
        if let url = Environment.get("DATABASE_URL"), !url.isEmpty {
            app.databases.use(.postgres(configuration: try SQLPostgresConfiguration(url: url), maxConnectionsPerEventLoop: 16), as: .psql)
        } else {
            app.databases.use(.sqlite(.file(sqlitePath)), as: .sqlite)
        }
        app.migrations.add(CreateShop())
        try await app.autoMigrate()
        // Unrace's own tables, and the store the middleware records keys in.
        let store = try await FluentStore(databases: app.databases, logger: app.logger)
        let operations = try Operations(store: store, configuration: .init())
        app.middleware = .init()
        app.middleware.use(ProblemMiddleware())
        try routes(app, operations: operations, idempotency: idempotency)
    }
}
