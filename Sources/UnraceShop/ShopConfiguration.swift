public import HTTPTypes
public import UnraceHummingbird

/// Settings of the reference shop.
public struct ShopConfiguration: Sendable {
    /// The header naming the client whose idempotency keys a request uses (`X-Client-Id`);
    /// requests without it share the principal `anonymous`.
    public static let clientHeader = HTTPField.Name("X-Client-Id")!

    /// Whether `POST /orders` runs under ``IdempotencyMiddleware`` (default `true`). Off, it shows
    /// what retries do without it.
    public var idempotency = true
    /// What a retry gets while the first request with its key runs (default: wait 10 s, then replay).
    public var whileInProgress: WhileInProgress = .wait(upTo: .seconds(10))
    /// How long completed keys stay stored (default 24 hours).
    public var retention: Duration = .seconds(86_400)
    /// Stock added at set-up for SKUs that have none yet (default `widget`: 1,000, `gadget`: 100).
    public var stock: [String: Int64] = ["widget": 1_000, "gadget": 100]
    /// Coupons added at set-up, each redeemable once (default `WELCOME10`, `SPRING24`).
    public var coupons: Set<String> = ["WELCOME10", "SPRING24"]

    /// All defaults.
    public init() {}
}
