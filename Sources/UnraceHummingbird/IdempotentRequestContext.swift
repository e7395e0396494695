public import Foundation
public import Hummingbird

/// What the idempotency layer hands a handler: the transaction its writes must use.
public struct IdempotencyContext<Transaction: Sendable>: Sendable {
    /// The transaction that also stores this request's response, while the handler runs under
    /// ``IdempotencyMiddleware``; `nil` on routes without it. Write through it, and the writes
    /// commit together with the stored response or not at all. It is valid only until the
    /// handler returns.
    public internal(set) var transaction: Transaction?

    /// An empty context: no transaction.
    public init() { self.transaction = nil }
}

/// A request context that can carry the transaction of an idempotent request.
public protocol IdempotentRequestContext: RequestContext {
    /// The store's transaction type (`S.Transaction` of the middleware's store).
    associatedtype Transaction: Sendable
    /// Filled in by ``IdempotencyMiddleware`` before it calls the handler.
    var idempotency: IdempotencyContext<Transaction> { get set }
}

/// A ready-made ``IdempotentRequestContext`` for applications that need nothing else.
public struct UnraceRequestContext<Transaction: Sendable>: IdempotentRequestContext {
    /// Hummingbird's own per-request storage.
    public var coreContext: CoreRequestContextStorage
    /// The idempotency layer's storage.
    public var idempotency: IdempotencyContext<Transaction>

    /// Creates the context for one request.
    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.idempotency = .init()
    }

    /// JSON with sorted keys and ISO 8601 dates: the same value always encodes to the same bytes,
    /// so a response computed again (rather than replayed) is byte-identical to the stored one.
    public var responseEncoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}
