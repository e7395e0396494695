import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Logging
import UnraceVapor
import Vapor

/// The shop: `swift run VaporShop serve --hostname 127.0.0.1 --port 8080`. SQLite (`vaporshop.sqlite`,
/// or `SQLITE_PATH`) by default; PostgreSQL with `DATABASE_URL=postgres://…`. `UNRACE_IDEMPOTENCY=off`
/// serves `POST /orders` without the middleware, to see what retries do without it.
@main
enum Entrypoint {
    static func main() async throws {
        var environment = try Environment.detect()
        try LoggingSystem.bootstrap(from: &environment)
        let app = try await Application.make(environment)
        do {
            try await configure(app)
            try await app.execute()
        } catch {
            app.logger.report(error: error)
            try? await app.asyncShutdown()
            throw error
        }
        try await app.asyncShutdown()
    }

    static func configure(_ app: Application) async throws {
        if let url = Environment.get("DATABASE_URL") {
            app.databases.use(.postgres(configuration: try SQLPostgresConfiguration(url: url), maxConnectionsPerEventLoop: 16), as: .psql)
        } else {
            app.databases.use(.sqlite(.file(Environment.get("SQLITE_PATH") ?? "vaporshop.sqlite")), as: .sqlite)
        }
        app.migrations.add(CreateShop())
        try await app.autoMigrate()
        // Unrace's own tables, and the store the middleware records keys in.
        let store = try await FluentStore(databases: app.databases, logger: app.logger)
        let operations = try Operations(store: store, configuration: .init())
        app.middleware = .init()
        app.middleware.use(ProblemMiddleware())
        try routes(app, operations: operations, idempotency: Environment.get("UNRACE_IDEMPOTENCY") != "off")
    }
}
