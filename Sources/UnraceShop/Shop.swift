import Foundation
public import Hummingbird
public import Logging
import NIOCore
import Prometheus
public import ServiceLifecycle
import Synchronization
public import Unrace
import UnraceHTTP
public import UnraceHummingbird
public import UnraceSQL

/// The reference shop behind `unrace serve`: Unrace's public API at an HTTP edge.
///
/// Orders are created idempotently (`POST /orders` needs an `Idempotency-Key`): the stock
/// decrement, the coupon redemption, the order row, its messages in the outbox (``MessageQueue``:
/// capture, then email, for ``ShopWorker``) and the stored response are one transaction. Payments are captured once at an HTTP provider with a
/// derived key (two-phase). Products are versioned records served with `ETag` and changed only
/// with `If-Match`. Wallets live on the ledger (transfer ids are idempotency keys), seats are
/// reservations (hold, confirm, release), and order events from other services go through the
/// inbox (out of order and duplicated) into a lifecycle that refuses impossible moves.
public struct Shop<S: SQLStore>: Sendable {
    /// The request context of the shop's router.
    public typealias Context = UnraceRequestContext<S.Transaction>

    /// The database.
    public let store: S
    /// The shop's settings.
    public let configuration: ShopConfiguration
    let operations: Operations<S>
    let products: Records<S>
    let ledger: Ledger<S>
    let reservations: Reservations<S>
    let inbox: Inbox<S>
    /// The order messages the outbox feeds and ``ShopWorker``s consume.
    public let queue: MessageQueue<S>
    let logger: Logger
    /// The write probe `GET /health` runs: one at a time.
    let healthProbe = HealthProbe()

    /// The name of the shop's order queue.
    public static var queueName: String { "shop-orders" }

    /// - Throws: ``UnraceError`` when the configuration is invalid.
    public init(store: S, configuration: ShopConfiguration = .init(), logger: Logger = Logger(label: "unrace.shop")) throws {
        guard configuration.healthTimeout >= .milliseconds(100), configuration.healthTimeout <= .seconds(60) else {
            throw UnraceError(.invalidConfiguration, "healthTimeout must be between 100 ms and 60 seconds")
        }
        guard (1...ShopConfiguration.unitPriceCentsMaximum).contains(configuration.unitPriceCents) else {
            throw UnraceError(.invalidConfiguration, "unitPriceCents must be between 1 and \(ShopConfiguration.unitPriceCentsMaximum)")
        }
        var configuration = configuration
        configuration.provider = try configuration.provider.map(ShopConfiguration.providerBase)
        self.store = store
        self.configuration = configuration
        let metricsFactory = PrometheusMetricsFactory(registry: configuration.metrics)
        var operations = OperationsConfiguration()
        operations.retention = configuration.retention
        operations.lease = configuration.lease
        operations.clock = configuration.clock
        // Every API type reports to the shop's registry (what GET /metrics serves) and its logger.
        let observability = Observability(logger: logger, metricsFactory: metricsFactory)
        self.operations = try Operations(store: store, configuration: operations, observability: observability)
        let clock = configuration.clock
        self.products = try Records(store: store, collection: "shop_products", clock: clock, observability: observability)
        var ledger = LedgerConfiguration()
        ledger.clock = clock
        self.ledger = try Ledger(store: store, configuration: ledger, observability: observability)
        self.reservations = Reservations(store: store, clock: clock, observability: observability)
        var inbox = InboxConfiguration()
        inbox.clock = clock
        self.inbox = try Inbox(store: store, configuration: inbox, observability: observability)
        var queue = configuration.queue
        queue.clock = clock
        self.queue = try MessageQueue(store: store, name: Self.queueName, configuration: queue, observability: observability)
        self.logger = logger
    }

    /// Creates the shop's tables when missing and adds the configured stock and coupons once
    /// (existing rows are left as they are, so restarts and a second instance change nothing).
    /// Replicas started together set up one at a time, under the store's schema lock.
    public func setUp() async throws {
        let stock = configuration.stock
        let coupons = configuration.coupons
        try await store.withSchemaLock { tx in
            try await tx.execute("CREATE TABLE IF NOT EXISTS shop_stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL)")
            try await tx.execute(
                """
                CREATE TABLE IF NOT EXISTS shop_orders (id TEXT PRIMARY KEY, client TEXT NOT NULL, sku TEXT NOT NULL,
                quantity BIGINT NOT NULL, coupon TEXT, status TEXT NOT NULL DEFAULT 'created', created_at TEXT NOT NULL)
                """
            )
            try await tx.execute("CREATE TABLE IF NOT EXISTS shop_coupons (code TEXT PRIMARY KEY, order_id TEXT)")
            try await tx.execute("CREATE TABLE IF NOT EXISTS shop_fulfilment (order_id TEXT PRIMARY KEY, state TEXT NOT NULL)")
            // What workers did, in the order the store recorded it: the stand-in for the
            // payment provider's and the mail server's logs, which the history checker reads.
            let position = store.dialect.identityColumn
            try await tx.execute(
                """
                CREATE TABLE IF NOT EXISTS shop_effects (position \(position), operation TEXT NOT NULL, stream TEXT NOT NULL,
                sequence BIGINT NOT NULL, amount BIGINT NOT NULL, worker TEXT NOT NULL)
                """
            )
            try await tx.execute("CREATE TABLE IF NOT EXISTS shop_merchant (id TEXT PRIMARY KEY, balance BIGINT NOT NULL)")
            try await tx.execute("INSERT INTO shop_merchant (id, balance) VALUES ('merchant', 0) ON CONFLICT (id) DO NOTHING")
            for (sku, available) in stock.sorted(by: { $0.key < $1.key }) {
                try await tx.execute(
                    "INSERT INTO shop_stock (sku, available) VALUES (?, ?) ON CONFLICT (sku) DO NOTHING",
                    [.text(sku), .integer(available)]
                )
            }
            for code in coupons.sorted() {
                try await tx.execute("INSERT INTO shop_coupons (code) VALUES (?) ON CONFLICT (code) DO NOTHING", [.text(code)])
            }
        }
        _ = try await ledger.createAccounts([Account(id: Self.bankAccount, ledger: 1, code: 1)])
        for (show, seats) in configuration.seats.sorted(by: { $0.key < $1.key }) {
            _ = try await reservations.createResource(show, capacity: seats)
        }
    }

    /// The shop's routes, with the idempotency middleware on `POST /orders` unless the
    /// configuration turns it off.
    public func router() throws -> Router<Context> {
        let router = Router(context: Context.self)
        // Every error is application/problem+json, the router's own 404 included (for an unknown
        // route and for a method a route does not have: Hummingbird's router answers no 405).
        router.add(middleware: ProblemMiddleware(logger: logger))
        // A body that does not arrive in time is 408, whatever route it was for.
        router.add(middleware: try RequestBodyTimeout(timeout: configuration.requestTimeout, byteCountLimit: 1 << 20))
        router.get("health") { _, _ in try await health() }
        router.get("metrics") { _, _ in
            // The queue's depth gauge is read at scrape time, so it is current; a failed read
            // leaves the last value and never costs the scrape its other metrics.
            _ = try? await queue.depth()
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: .init(bytes: configuration.metrics.emitToBuffer()))
            )
        }
        router.get("openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: .init(string: ShopOpenAPI.document)))
        }
        let orders = router.group("orders")
        if configuration.idempotency {
            var idempotency = IdempotencyConfiguration()
            idempotency.whileInProgress = configuration.whileInProgress
            orders.add(
                middleware: try IdempotencyMiddleware(
                    operations: operations,
                    principal: .custom { request, _ in
                        ShopConfiguration.principal(of: request.headers)
                    },
                    configuration: idempotency
                )
            )
        }
        orders.post { request, context in try await createOrder(request, context) }
        orders.get("{id}") { request, context in try await order(request, context) }
        // Capture is keyed by the business operation, not by a client header: not under the middleware.
        router.post("payments/{id}/capture") { request, context in try await capture(request, context) }
        router.put("wallets/{id}") { request, context in try await openWallet(request, context) }
        router.get("wallets/{id}") { request, context in try await wallet(request, context) }
        router.post("wallets/transfers") { request, context in try await transfer(request, context) }
        router.post("seats/{show}/holds") { request, context in try await holdSeats(request, context) }
        router.post("seats/holds/{key}/confirm") { request, context in try await settleHold(request, context, confirm: true) }
        router.post("seats/holds/{key}/release") { request, context in try await settleHold(request, context, confirm: false) }
        router.post("events") { request, context in try await receiveEvent(request, context) }
        router.get("events/orders/{order}") { request, context in try await fulfilment(request, context) }
        router.get("outbox") { _, _ in try await outbox() }
        router.get("products/{sku}") { request, context in try await product(request, context) }
        router.put("products/{sku}") { request, context in try await putProduct(request, context) }
        return router
    }

    /// Runs `body` in the idempotent request's transaction, or in a transaction of its own on
    /// routes without the middleware.
    func write<T: Sendable>(_ context: Context, _ body: (S.Transaction) async throws -> T) async throws -> T {
        if let transaction = context.idempotency.transaction { return try await body(transaction) }
        return try await store.withTransaction(body)
    }
}

extension Shop {
    /// The background work the shop needs, as `Service`s for the `ServiceGroup` that runs its
    /// server: expired idempotency records purged in every scope (each client's `POST /orders`
    /// keys and the captures'), expired pending transfers voided, expired seat holds released,
    /// acked order messages purged after the retention, and inbox gaps reported.
    /// - Parameter purgeInterval: how long the record purger waits after a round that found
    ///   less than a full batch (default 60 s).
    public func maintenanceServices(purgeInterval: Duration = .seconds(60)) throws -> [any Service] {
        [
            try ExpiredRecordPurger(everyScopeOf: operations, interval: purgeInterval, logger: logger),
            try PendingTransferSweeper(ledger: ledger, logger: logger),
            try ExpiredHoldReaper(reservations: reservations, logger: logger),
            try CompletedMessagePurger(queue: queue, age: configuration.retention, logger: logger),
            try InboxGapMonitor(inbox: inbox, logger: logger),
        ]
    }
}

/// `GET /outbox`: the order queue's messages.
struct OutboxResponse: ResponseEncodable {
    var messages: Int
    var unsent: Int
    var dead: Int
}

extension Shop {
    /// `GET /outbox`: how many order messages the outbox holds, how many wait for a worker
    /// (`unrace work`), and how many were dead-lettered.
    func outbox() async throws -> OutboxResponse {
        let depth = try await queue.depth()
        return OutboxResponse(
            messages: depth.ready + depth.leased + depth.done + depth.dead,
            unsent: depth.ready + depth.leased,
            dead: depth.dead
        )
    }
}

/// `GET /health`.
struct HealthResponse: ResponseEncodable {
    let status: String
    let store: String
    let writable: Bool
}

extension Shop {
    /// `GET /health`: 200 when the database takes writes — a write transaction begins (SQLite's
    /// writer, PostgreSQL's primary: not in recovery, not read-only) within ``ShopConfiguration/healthTimeout`` (2 s by default) —
    /// else 503 `database_read_only` or `service_unavailable` with `Retry-After`: a load balancer
    /// takes a replica whose database is failing over out of rotation.
    func health() async throws -> HealthResponse {
        let store = store
        // A task of its own, awaited at most healthTimeout: a probe waiting for the writer (or a
        // file another process holds locked, up to the busy timeout) cannot be cancelled, and a
        // task group would wait for it. One probe at a time: later requests share the running one.
        let probe = healthProbe.probe {
            try await store.withTransaction { tx in
                guard store.dialect.name == SQLDialect.postgres.name else {
                    _ = try await tx.query("SELECT 1 AS ok")
                    return
                }
                let rows = try await tx.query(
                    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on' AS read_only"
                )
                if rows.first?["read_only"].bool == true {
                    throw UnraceError(.databaseReadOnly, "the database is a read-only standby")
                }
            }
        }
        let writable = await TaskRace.first(of: probe, within: configuration.healthTimeout)
        switch writable {
        case .success?:
            return HealthResponse(status: "ok", store: store.backendName, writable: true)
        case .failure(let error as UnraceError)? where error.code == .databaseReadOnly:
            throw HTTPProblem(
                HTTPProblem.Code("database_read_only"),
                status: .serviceUnavailable,
                title: "The database does not take writes",
                detail: "a read-only standby: retry after Retry-After"
            )
        case .failure?, nil:
            throw HTTPProblem(
                .serviceUnavailable,
                detail: "the database did not begin a write transaction within \(configuration.healthTimeout)"
            )
        }
    }
}

extension Shop {
    /// The shop as a Hummingbird application listening on `host:port` (port 0 picks a free one).
    /// - Parameter onServerRunning: called with the bound port once the server listens.
    public func application(
        host: String,
        port: Int,
        onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        guard configuration.idleTimeout >= .seconds(1), configuration.idleTimeout <= .seconds(3_600) else {
            throw UnraceError(.invalidConfiguration, "idleTimeout must be between 1 second and 1 hour")
        }
        let idle = TimeAmount.nanoseconds(
            Int64(configuration.idleTimeout.components.seconds) * 1_000_000_000
                + configuration.idleTimeout.components.attoseconds / 1_000_000_000
        )
        return Application(
            router: try router(),
            server: .http1(configuration: .init(idleTimeout: idle)),
            configuration: .init(address: .hostname(host, port: port), serverName: "unrace"),
            onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? port) },
            logger: logger
        )
    }
}

/// The write probe behind `GET /health`: at most one runs at a time, and a request waits for it
/// a bounded time whether or not it has finished.
final class HealthProbe: Sendable {
    private let running = Mutex<Task<Void, any Error>?>(nil)

    /// The probe running now, or a new one running `body`.
    func probe(_ body: @escaping @Sendable () async throws -> Void) -> Task<Void, any Error> {
        running.withLock { running in
            if let running { return running }
            let task = Task {
                defer { self.running.withLock { $0 = nil } }
                try await body()
            }
            running = task
            return task
        }
    }
}
