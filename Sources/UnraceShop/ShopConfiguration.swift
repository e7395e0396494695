import Foundation
public import HTTPTypes
public import Prometheus
public import Unrace
public import UnraceHummingbird

/// Settings of the reference shop.
public struct ShopConfiguration: Sendable {
    /// The header naming the client whose idempotency keys a request uses (`X-Client-Id`);
    /// requests without it share a principal of their own, which no value of the header names.
    public static let clientHeader = HTTPField.Name("X-Client-Id")!

    /// The client a request names, as an order records it: its `X-Client-Id`, `anonymous`
    /// without one, `nil` (refused with 400 `principal_invalid`) when it sends the header more
    /// than once.
    static func client(of headers: HTTPFields) -> String? {
        let values = headers[values: clientHeader]
        return values.isEmpty ? "anonymous" : PrincipalScope.headerValue(values)
    }

    /// Whose idempotency keys a request uses: `client:` and its `X-Client-Id`, or `anonymous`
    /// without one — a principal no header value gives, so a client that sends
    /// `X-Client-Id: anonymous` never replays the responses of requests that sent none.
    static func principal(of headers: HTTPFields) -> String? {
        headers[values: clientHeader].isEmpty ? "anonymous" : client(of: headers).map { "client:" + $0 }
    }

    /// Whether `POST /orders` runs under ``IdempotencyMiddleware`` (default `true`). Off, it shows
    /// what retries do without it.
    public var idempotency = true
    /// What a retry gets while the first request with its key runs (default: wait 10 s, then replay).
    public var whileInProgress: WhileInProgress = .wait(upTo: .seconds(10))
    /// How long completed keys stay stored (default 24 hours).
    public var retention: Duration = .seconds(86_400)
    /// The clock of every API the shop uses (leases, retention, holds, the queue — whose own
    /// ``QueueConfiguration/clock`` it replaces — and the maintenance loops). Default: the
    /// system wall clock, which PostgreSQL replaces with its own; tests move a
    /// ``ManualWallClock`` by hand.
    public var clock: any WallClock = SystemWallClock()
    /// How long a connection may stay idle — nothing read while a request arrives, or between
    /// requests — before the server closes it (default 30 s; 1 s to 1 h).
    public var idleTimeout: Duration = .seconds(30)
    /// How long a request's body may take to arrive in full before the request is answered 408
    /// and its connection closed, however slowly it trickles (default 30 s; 1 ms to 10 min).
    public var requestTimeout: Duration = .seconds(30)
    /// How long `GET /health` waits for its database to begin a write transaction before it
    /// answers 503 (default 2 s; 100 ms to 60 s).
    public var healthTimeout: Duration = .seconds(2)
    /// How long a graceful shutdown (SIGTERM) waits for requests in flight before it cancels
    /// them; the process exits at most a few seconds after (default 10 s; 0 to 10 min).
    public var shutdownGrace: Duration = .seconds(10)
    /// Stock added at set-up for SKUs that have none yet (default `widget`: 1,000, `gadget`: 100).
    public var stock: [String: Int64] = ["widget": 1_000, "gadget": 100]
    /// Shows and their seats, added at set-up when missing (default `show-1`: 100).
    public var seats: [String: Int64] = ["show-1": 100]
    /// Coupons added at set-up, each redeemable once (default `WELCOME10`, `SPRING24`).
    public var coupons: Set<String> = ["WELCOME10", "SPRING24"]

    /// The payment provider's base URL (for example `http://127.0.0.1:9000`, an `unrace provider`);
    /// `nil` (the default) answers captures with 503 `provider_unavailable`. An `http` or `https`
    /// URL with a host and nothing after its path (checked when the shop is made).
    public var provider: String?
    /// Whether captures send the provider an idempotency key derived from the operation
    /// (default `true`). Off, a capture retried after a crash charges again: the naive version.
    public var providerKeys = true
    /// The price of one unit, in cents (default 250; 1 to ``unitPriceCentsMaximum``), which
    /// captures charge.
    public var unitPriceCents: Int64 = 250
    /// The highest unit price accepted: 1,000,000,000 cents, so an order's amount (at most 1,000
    /// units) stays far inside what a balance holds.
    public static var unitPriceCentsMaximum: Int64 { 1_000_000_000 }
    /// How long a capture's claim lasts before another request may take it over (default 30 s).
    public var lease: Duration = .seconds(30)
    /// Where the shop's counters go (`Operations`, the idempotency middleware's claims, the
    /// order queue), served as Prometheus text on `GET /metrics`. Default: a registry of the
    /// shop's own, so a process-wide `MetricsSystem` bootstrap is not needed.
    public var metrics = PrometheusCollectorRegistry()
    /// The order queue's settings as the shop enqueues: the attempt limit is stored with each
    /// message; the visibility timeout and backoff are the leasing worker's own
    /// (``ShopWorker``'s configuration). Defaults as ``QueueConfiguration``.
    public var queue = QueueConfiguration()
    /// Faults injected to show what the guards do under them.
    public var faults = Faults()

    /// Faults injected for tests and demonstrations; none by default.
    public struct Faults: Sendable {
        /// Runs after the provider charged and before the capture completes: a crash there
        /// (for example `kill(getpid(), SIGKILL)`) is the window derived keys protect.
        public var afterCharge: (@Sendable () -> Void)?
        /// No faults.
        public init() {}
    }

    /// All defaults.
    public init() {}
}

extension ShopConfiguration {
    /// `url` as a base the shop and its workers append `/charges` and `/emails` to: an `http` or
    /// `https` URL with a host, a port (if any) of 1 to 65535, and no query, fragment or
    /// credentials; a trailing `/` is dropped.
    /// - Throws: ``UnraceError/Code/invalidConfiguration`` naming what is wrong.
    package static func providerBase(_ url: String) throws -> String {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let host = parts.host, !host.isEmpty, parts.query == nil, parts.fragment == nil, parts.user == nil,
            parts.port.map({ (1...65_535).contains($0) }) ?? true
        else {
            throw UnraceError(
                .invalidConfiguration,
                "the provider must be an http:// or https:// URL with a host, such as http://127.0.0.1:9000",
                detail: "got \(url.debugDescription)"
            )
        }
        return url.hasSuffix("/") ? String(url.dropLast()) : url
    }
}
