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
        .library(name: "UnraceSQLite", targets: ["UnraceSQLite"]),
        .library(name: "UnracePostgres", targets: ["UnracePostgres"]),
        .library(name: "UnraceSimulation", targets: ["UnraceSimulation"]),
        .executable(name: "unrace", targets: ["unrace"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift.git", exact: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
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
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnraceSQLite",
            dependencies: [
                "Unrace",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnracePostgres",
            dependencies: [
                "Unrace",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "UnraceSimulation",
            // The simulator runs the shipping stores: memory, and SQLite on a fresh file per run.
            dependencies: ["Unrace", "UnraceSQLite", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "unrace",
            dependencies: [
                "Unrace", "UnraceSQLite", "UnracePostgres", "UnraceSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
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
                "Unrace", "UnraceSQLite", "UnracePostgres", "UnraceSimulation",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
