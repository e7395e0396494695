import ArgumentParser
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Unrace
import UnraceHummingbird
import UnracePostgres
import UnraceSQL
import UnraceSQLite
import UnraceShop

/// `unrace serve`: the reference shop over HTTP.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the reference shop: idempotent POST /orders, products with ETag and If-Match.",
        discussion: """
            SQLite by default (--file, default shop.sqlite); --database postgres://… lets several \
            instances share the work. Prints "listening on http://HOST:PORT" once it accepts \
            connections; stops gracefully on SIGTERM or SIGINT.
            """
    )

    @Option(help: "The address to listen on.") var host = "127.0.0.1"
    @Option(help: "The port to listen on (0 picks a free one).") var port = 8080
    @Option(help: "A postgres:// URL; overrides --file.") var database: String?
    @Option(help: "The SQLite file.") var file = "shop.sqlite"
    @Flag(help: "Serve POST /orders without the idempotency middleware, to see what retries do without it.")
    var noIdempotency = false
    @Option(help: "While a key's first request runs, a retry waits (wait) or gets 409 (conflict).")
    var whileInProgress: InProgressChoice = .wait
    @Option(help: "The payment provider's URL (an `unrace provider`); default: one run inside this process.")
    var provider: String?
    @Option(help: "Seconds a capture's claim lasts before a retry may take it over (1 to 86400).")
    var lease = 30
    @Flag(help: "Capture without an idempotency key at the provider: a capture retried after a crash charges twice.")
    var naiveCapture = false
    @Option(help: "SKU=UNITS: stock added at set-up for a SKU that has none yet (repeatable; default widget=1000, gadget=100).")
    var stock: [String] = []
    @Option(help: "Deliveries an order message gets before it is dead-lettered (1 to 1000).")
    var maxAttempts = 10
    @Option(help: "Seconds a connection may stay idle (nothing arriving) before it is closed (1 to 3600).")
    var idleTimeout = 30
    @Option(help: "Seconds a request's body may take to arrive in full; then 408 and the connection closes (1 to 600).")
    var requestTimeout = 30
    @Option(
        help: "Seconds SIGTERM waits for requests in flight before it cancels them (0 to 600); the process exits within about 5 s more."
    )
    var shutdownGrace = 10

    enum InProgressChoice: String, ExpressibleByArgument, CaseIterable { case wait, conflict }

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard (1...86_400).contains(lease) else { throw ValidationError("--lease must be between 1 and 86400 seconds") }
        guard (1...1_000).contains(maxAttempts) else { throw ValidationError("--max-attempts must be between 1 and 1000") }
        guard (1...3_600).contains(idleTimeout) else { throw ValidationError("--idle-timeout must be between 1 and 3600 seconds") }
        guard (1...600).contains(requestTimeout) else { throw ValidationError("--request-timeout must be between 1 and 600 seconds") }
        guard (0...600).contains(shutdownGrace) else { throw ValidationError("--shutdown-grace must be between 0 and 600 seconds") }
        _ = try stockLevels()
        try checkProvider(provider)
        try checkPostgresURL(database)
    }

    /// `--stock` parsed: SKU to units.
    func stockLevels() throws -> [String: Int64]? {
        guard !stock.isEmpty else { return nil }
        var levels: [String: Int64] = [:]
        for item in stock {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, ShopNames.isSKU(parts[0]), let units = Int64(parts[1]), (0...1_000_000_000).contains(units) else {
                throw ValidationError(
                    "--stock takes SKU=UNITS: a SKU of 1 to 64 letters, digits, _ or -, and 0 to 1000000000 units (got \(item.debugDescription))"
                )
            }
            guard levels.updateValue(units, forKey: parts[0]) == nil else {
                throw ValidationError("--stock names \(parts[0]) twice")
            }
        }
        return levels
    }

    func run() async throws {
        var configuration = ShopConfiguration()
        configuration.idempotency = !noIdempotency
        configuration.whileInProgress = whileInProgress == .wait ? .wait(upTo: .seconds(10)) : .conflict
        configuration.lease = .seconds(lease)
        configuration.providerKeys = !naiveCapture
        if let levels = try stockLevels() { configuration.stock = levels }
        configuration.queue.maxAttempts = maxAttempts
        configuration.idleTimeout = .seconds(idleTimeout)
        configuration.requestTimeout = .seconds(requestTimeout)
        configuration.shutdownGrace = .seconds(shutdownGrace)
        // UNRACE_SHOP_FAULT=crash-after-charge: die (SIGKILL) between the provider's charge and
        // the capture's completion, the window derived provider keys protect.
        if ProcessInfo.processInfo.environment["UNRACE_SHOP_FAULT"] == "crash-after-charge" {
            configuration.faults.afterCharge = { kill(getpid(), SIGKILL) }
        }
        let logger = cliLogger("unrace.serve", level: .warning)
        guard provider == nil else {
            configuration.provider = provider
            return try await run(configuration, logger)
        }
        // No provider named: run the fake one in this process, on a free port.
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let providerApp = Application(
            router: PaymentProvider().router(),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
            logger: logger
        )
        // In a group of its own, shut down gracefully after the shop's: cancelled instead, its
        // server logged an error ("Waiting on child channel: CancellationError()") at every stop.
        // Bounded like the shop's: a request that never finishes (the provider has no idle
        // timeout) is cancelled after 2 s rather than holding the exit.
        var providerConfiguration = ServiceGroupConfiguration(services: [.init(service: providerApp)], logger: logger)
        providerConfiguration.maximumGracefulShutdownDuration = .seconds(2)
        let providerGroup = ServiceGroup(configuration: providerConfiguration)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                // A provider that stops (or never binds) ends the wait for its port.
                defer { continuation.finish() }
                try await providerGroup.run()
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await group.waitForAll()  // its error, if it failed
                throw ServeFailure("the built-in payment provider stopped before it listened")
            }
            FileHandle.standardOutput.write(Data("provider on http://127.0.0.1:\(port)\n".utf8))
            configuration.provider = "http://127.0.0.1:\(port)"
            do {
                try await run(configuration, logger)
            } catch {
                await providerGroup.triggerGracefulShutdown()
                try? await group.waitForAll()
                throw error
            }
            await providerGroup.triggerGracefulShutdown()
            try await group.waitForAll()
        }
    }

    private func run(_ configuration: ShopConfiguration, _ logger: Logger) async throws {
        // One group: the store (PostgreSQL's client, first so that it stops last), then the shop —
        // its server and its maintenance (purges, sweeps, reaping, gap reports). SIGTERM or SIGINT
        // shuts them all down gracefully.
        let services: [any Service]
        if let database {
            let store = try await PostgresStore(url: database, logger: logger)
            services = [
                store, ShopService(shop: try Shop(store: store, configuration: configuration, logger: logger), host: host, port: port),
            ]
        } else {
            let store = try await SQLiteStore(path: file, logger: logger)
            services = [ShopService(shop: try Shop(store: store, configuration: configuration, logger: logger), host: host, port: port)]
        }
        let deadline = ShutdownDeadline(after: configuration.shutdownGrace + .seconds(5))
        // Last, so a graceful shutdown (which runs backwards) reaches it first and starts its timer.
        var group = ServiceGroupConfiguration(
            services: (services + [deadline]).map { .init(service: $0) },
            logger: cliLogger("unrace.serve", level: .warning)
        )
        group.gracefulShutdownSignals = [.sigterm, .sigint]
        Self.bound(&group, grace: configuration.shutdownGrace)
        try await ServiceGroup(configuration: group).run()
    }

    /// A graceful shutdown that waits at most `grace` for requests in flight, then cancels them
    /// (and ``ShutdownDeadline`` ends the process 5 s later if cancelling has not).
    static func bound(_ group: inout ServiceGroupConfiguration, grace: Duration) {
        group.maximumGracefulShutdownDuration = grace
    }
}

/// SIGTERM always stops `serve`: once a graceful shutdown has begun, the process exits (status
/// 1, saying why) after `limit`, whatever is still running — a cancellation stuck on a connection
/// the server no longer answers, say. The timer runs on a thread of its own, which no stuck task
/// can hold up; a fatal error would stop it too, but only after printing a backtrace, which in a
/// debug build took longer than the grace itself.
struct ShutdownDeadline: Service {
    let limit: Duration

    init(after limit: Duration) { self.limit = limit }

    func run() async throws {
        try? await gracefulShutdown()
        let seconds = Double(limit.components.seconds) + Double(limit.components.attoseconds) / 1e18
        DispatchQueue.global().asyncAfter(deadline: .now() + seconds) {
            FileHandle.standardError.write(Data("unrace serve: still stopping \(seconds) s after the shutdown began; exiting\n".utf8))
            _exit(1)
        }
    }
}

/// The shop as a service: sets up its rows (waiting for the store's schema), then runs its
/// HTTP server and maintenance services in a group of their own.
struct ShopService<S: SQLStore>: Service {
    let shop: Shop<S>
    let host: String
    let port: Int

    func run() async throws {
        // Setting up waits for the store's schema; a SIGTERM meanwhile must still stop the process,
        // and stop it as a shutdown (exit 0), not a failure.
        do {
            try await cancelWhenGracefulShutdown { try await shop.setUp() }
        } catch is CancellationError where Task.isShuttingDownGracefully {
            return
        }
        let host = self.host
        let app = try shop.application(host: host, port: port) { port in
            FileHandle.standardOutput.write(Data("listening on http://\(host):\(port)\n".utf8))
        }
        var group = ServiceGroupConfiguration(
            services: ([app] + (try shop.maintenanceServices())).map { .init(service: $0) },
            logger: cliLogger("unrace.serve", level: .warning)
        )
        ServeCommand.bound(&group, grace: shop.configuration.shutdownGrace)
        try await ServiceGroup(configuration: group).run()
    }
}

/// A run of `serve` that could not go on (exit 1 with the reason).
struct ServeFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
