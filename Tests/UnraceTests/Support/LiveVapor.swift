import Fluent
import FluentSQLiteDriver
import Foundation
import Logging
import Testing
import Vapor

/// Runs a Vapor application on a fresh SQLite file in a temporary folder, migrated with
/// `migration` (with `nil`, no Fluent database at all), configured by `configure` (its routes and middleware; it gets the folder for
/// files of its own), and served on a free loopback port for the duration of `body`.
func withVaporApp<Configured: Sendable>(
    migration: (any Migration)?,
    configure: (Application, URL) async throws -> Configured,
    _ body: (Application, LiveClient, Configured) async throws -> Void
) async throws {
    var logger = Logger(label: "test.vapor")
    logger.logLevel = .critical
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-vapor"))
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: folder) }
    let app = try await Application.make(.testing, logger: logger)
    do {
        if let migration {
            app.databases.use(.sqlite(.file(folder.appendingPathComponent("app.sqlite").path)), as: .sqlite)
            app.migrations.add(migration)
            try await app.autoMigrate()
        }
        let configured = try await configure(app, folder)
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        try await body(app, LiveClient(port: try #require(app.http.server.shared.localAddress?.port)), configured)
        await app.server.shutdown()
        try await app.asyncShutdown()
    } catch {
        await app.server.shutdown()
        try? await app.asyncShutdown()
        throw error
    }
}
