// swift-tools-version:6.1
import PackageDescription

// One target per layer, so this manifest shows the architecture (see ../shared/DESIGN.md):
// a pure core, the API written against `Store`, one target per real backend, and the CLI.
let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
]

let package = Package(
    name: "unrace",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "UnraceCore", targets: ["UnraceCore"]),
        .library(name: "Unrace", targets: ["Unrace"]),
        .library(name: "UnraceSQL", targets: ["UnraceSQL"]),
        .library(name: "UnraceSQLite", targets: ["UnraceSQLite"]),
        .library(name: "UnracePostgres", targets: ["UnracePostgres"]),
        .library(name: "UnraceSimulation", targets: ["UnraceSimulation"]),
        .library(name: "UnraceHTTP", targets: ["UnraceHTTP"]),
        .library(name: "UnraceHummingbird", targets: ["UnraceHummingbird"]),
        .library(name: "UnraceFluent", targets: ["UnraceFluent"]),
        .library(name: "UnraceVapor", targets: ["UnraceVapor"]),
        .library(name: "UnraceProbe", targets: ["UnraceProbe"]),
        .executable(name: "unrace", targets: ["unrace"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // Without swift-configuration support: Unrace reads no configuration files.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: ["FullFoundation"]),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        // Vapor and Fluent: only the UnraceFluent and UnraceVapor products build them.
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent.git", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-kit.git", from: "1.57.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver.git", from: "2.14.0"),
        .package(url: "https://github.com/vapor/fluent-sqlite-driver.git", from: "4.9.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
    ],
    targets: [
        .target(
            name: "UnraceCore",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Unrace",
            dependencies: [
                "UnraceCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnraceSQL",
            dependencies: ["UnraceCore", "Unrace"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnraceSQLite",
            dependencies: [
                "Unrace", "UnraceSQL",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnracePostgres",
            dependencies: [
                "Unrace", "UnraceSQL",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // Child processes without Foundation's `Process` (the fault run and the process tests).
            name: "UnraceSpawn",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnraceSimulation",
            // The simulator runs the shipping stores: memory, and SQLite on a fresh file per run.
            dependencies: ["Unrace", "UnraceSQL", "UnraceSQLite", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .target(
            // Framework-free HTTP rules: Idempotency-Key, fingerprints, entity tags, RFC 9457 problems.
            name: "UnraceHTTP",
            dependencies: ["UnraceCore", "Unrace", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnraceHummingbird",
            dependencies: [
                "Unrace", "UnraceHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // Unrace on an application's Fluent database (PostgreSQL or SQLite driver): the same
            // SQL and decisions, with Fluent models written in the claim's transaction.
            name: "UnraceFluent",
            dependencies: [
                "Unrace", "UnraceSQL", "UnracePostgres",
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // The Vapor 4 adapter of UnraceHTTP's engine: the same Idempotency-Key contract as
            // the Hummingbird middleware, the route's Fluent writes in the claim's transaction.
            name: "UnraceVapor",
            dependencies: [
                "Unrace", "UnraceHTTP", "UnraceFluent",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            // The reference shop behind `unrace serve`, written only against the public API.
            name: "UnraceShop",
            dependencies: [
                "Unrace", "UnraceSQL", "UnraceHTTP", "UnraceHummingbird", "UnraceSQLite", "UnracePostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            exclude: ["openapi.yaml"],  // the source of ShopOpenAPI.swift (scripts/generate-openapi)
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            // The Vapor example, built here with the package's own build (its tests start it);
            // Examples/VaporShop/Package.swift builds the same sources as a package of its own.
            name: "VaporShop",
            dependencies: [
                "UnraceVapor",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Examples/VaporShop/Sources/VaporShop"
        ),
        .target(
            // `unrace probe`: a black-box prober of any HTTP API's double-execution and
            // lost-update races, drawn with the simulator's timelines.
            name: "UnraceProbe",
            dependencies: [
                "UnraceCore", "UnraceSimulation",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "unrace",
            dependencies: [
                "Unrace", "UnraceSQL", "UnraceSQLite", "UnracePostgres", "UnraceSimulation", "UnraceShop", "UnraceSpawn", "UnraceProbe",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                // `unrace bench --observed`: a real metrics backend and a tracer.
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UnraceCoreTests",
            dependencies: ["UnraceCore"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "UnraceTests",
            dependencies: [
                "Unrace", "UnraceSQL", "UnraceSQLite", "UnracePostgres", "UnraceSimulation", "UnraceSpawn",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The HTTP edge: in process through HummingbirdTesting's router client, and over
                // real HTTP on loopback where the socket is what is tested.
                "UnraceHTTP", "UnraceHummingbird", "UnraceShop", "UnraceFluent", "UnraceVapor", "UnraceProbe",
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentKit", package: "fluent-kit"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            // The HTTP rules alone: no server, no database.
            name: "UnraceHTTPTests",
            dependencies: ["UnraceHTTP", "UnraceCore", .product(name: "HTTPTypes", package: "swift-http-types")],
            swiftSettings: swiftSettings
        ),
    ]
)
