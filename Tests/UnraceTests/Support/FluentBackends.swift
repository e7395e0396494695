import FluentKit
import FluentPostgresDriver
import FluentSQLiteDriver
import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import Unrace
import UnraceFluent

/// Runs `body` with a ``FluentStore`` on a fresh Fluent database of the driver: a new SQLite file
/// in a temporary folder, or a schema of its own in the test PostgreSQL (its `search_path`).
func withFluentStore<T: Sendable>(
    _ driver: SQLBackend,
    _ body: (FluentStore, any Database) async throws -> T
) async throws -> T {
    try await withFluentDatabases(driver) { store, database, _ in try await body(store, database) }
}

/// As ``withFluentStore(_:_:)``, also handing over the application's `Databases` the store is on.
func withFluentDatabases<T: Sendable>(
    _ driver: SQLBackend,
    _ body: (FluentStore, any Database, Databases) async throws -> T
) async throws -> T {
    let databases = Databases(threadPool: NIOThreadPool.singleton, on: MultiThreadedEventLoopGroup.singleton)
    var logger = Logger(label: "test.fluent")
    logger.logLevel = .warning
    var cleanUp: (@Sendable () async -> Void)?
    switch driver {
    case .sqlite:
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("unrace-fluent"))
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        databases.use(
            .sqlite(
                .file(folder.appendingPathComponent("fluent.sqlite").path),
                maxConnectionsPerEventLoop: 4,
                connectionPoolTimeout: .seconds(60)
            ),
            as: .sqlite
        )
        cleanUp = { try? FileManager.default.removeItem(at: folder) }
    case .postgres:
        let schema = uniqueName("f")
        try await TestPostgres.execute("CREATE SCHEMA \(schema)")
        var configuration = try TestPostgres.fluentConfiguration()
        configuration.searchPath = [schema]
        databases.use(
            .postgres(configuration: configuration, maxConnectionsPerEventLoop: 4, connectionPoolTimeout: .seconds(60)),
            as: .psql
        )
        cleanUp = { try? await TestPostgres.execute("DROP SCHEMA \(schema) CASCADE") }
    }
    let database = try #require(databases.database(logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()))
    do {
        let store = try await FluentStore(databases: databases, stepTimeout: .seconds(300), logger: logger)
        let result = try await body(store, database, databases)
        await databases.shutdownAsync()
        await cleanUp?()
        return result
    } catch {
        await databases.shutdownAsync()
        await cleanUp?()
        throw error
    }
}

extension TestPostgres {
    /// A Fluent configuration of the test server (no TLS), with the same long connect timeout as
    /// ``TestPostgres/url``.
    static func fluentConfiguration() throws -> SQLPostgresConfiguration {
        var configuration = try SQLPostgresConfiguration(url: try requireURL(adding: "tlsmode=disable"))
        configuration.coreConfiguration.options.connectTimeout = .seconds(60)
        return configuration
    }
}
