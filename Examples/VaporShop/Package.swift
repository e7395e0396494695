// swift-tools-version:6.1
import PackageDescription

// A Vapor 4 shop on Unrace: Fluent models written in the claim's transaction. It depends on
// Unrace by path; copy it and point the dependency at a release to start your own
// (`.package(url: "https://github.com/…/unrace.git", from: "…")`, product package "unrace").

// SwiftPM names a path dependency after its folder, whatever the clone is called: two levels up.
let unrace = Context.packageDirectory.split(separator: "/").dropLast(2).last.map { $0.lowercased() } ?? "unrace"

let package = Package(
    name: "VaporShop",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/vapor/vapor.git", from: "4.122.3"),
        .package(url: "https://github.com/vapor/fluent.git", from: "4.13.0"),
        .package(url: "https://github.com/vapor/fluent-postgres-driver.git", from: "2.14.0"),
        .package(url: "https://github.com/vapor/fluent-sqlite-driver.git", from: "4.9.0"),
        .package(url: "https://github.com/vapor/sql-kit.git", from: "3.36.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        .executableTarget(
            name: "VaporShop",
            dependencies: [
                .product(name: "UnraceVapor", package: unrace),
                .product(name: "Vapor", package: "vapor"),
                .product(name: "Fluent", package: "fluent"),
                .product(name: "FluentPostgresDriver", package: "fluent-postgres-driver"),
                .product(name: "FluentSQLiteDriver", package: "fluent-sqlite-driver"),
                .product(name: "SQLKit", package: "sql-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        )
    ]
)
