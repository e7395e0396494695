public import Hummingbird
import NIOCore
public import Unrace
public import UnraceHTTP

/// Makes `POST` (and `PATCH`) routes idempotent per draft-ietf-httpapi-idempotency-key-header:
/// the Hummingbird adapter of ``UnraceHTTP/IdempotencyEngine``, which holds every rule.
///
/// For a request with one of the configured methods:
/// - no `Idempotency-Key` → 400 `idempotency_key_missing` (unless keys are optional); a
///   malformed, repeated or over-long key → 400 `idempotency_key_invalid`;
/// - the first request with a key runs the handler, whose writes go through
///   `context.idempotency.transaction` and commit together with the stored response;
/// - a retry after completion gets the stored status, headers and body with
///   `Idempotent-Replayed: true`, without running the handler;
/// - a retry while the first runs waits and replays, or gets 409 (``WhileInProgress``);
/// - the same key with a different request (method, path, chosen headers, body) → 422
///   `idempotency_key_reused`;
/// - a store that is failing over, read-only or unreachable → 503 with `Retry-After`.
///
/// Keys are scoped per ``Principal``. A handler commits its writes by *returning* a response;
/// an HTTP error it *throws* (`HTTPError`, ``UnraceHTTP/HTTPProblem``) rolls its writes back and
/// is stored under the request's claim, in the same transaction, when its status is stored. Responses the configuration does not store
/// (5xx by default), and handler errors that are not HTTP errors, commit nothing and free the
/// key for a retry. Stored and replayed responses carry `Idempotency-Key-Retention`: the seconds
/// a completed key stays stored, counted from its completion (the same figure on a replay). Input the middleware itself refuses (key, principal, body size)
/// is a 4xx `application/problem+json`, never reaches the handler and stores nothing; a 4xx the
/// handler returns or throws is a terminal answer and is stored like any other.
///
/// The handler runs inside a store step. On PostgreSQL a step that meets a serialization
/// failure or deadlock is retried whole, so a handler may run again after its earlier attempt
/// rolled back: keep external effects out of it (call other services the two-phase way, as the
/// shop's capture does).
public struct IdempotencyMiddleware<S: Store, Context: IdempotentRequestContext>: RouterMiddleware
where Context.Transaction == S.Transaction {
    /// The rules, shared with every other framework's adapter.
    public let engine: IdempotencyEngine<S>
    /// Whose keys these are.
    public let principal: Principal<Context>

    /// The operations the keys are recorded with (its store, lease and retention).
    public var operations: Operations<S> { engine.operations }
    /// The middleware's settings.
    public var configuration: IdempotencyConfiguration { engine.configuration }

    /// - Throws: ``UnraceCore/UnraceError/Code/invalidConfiguration`` when a limit is out of range.
    public init(operations: Operations<S>, principal: Principal<Context>, configuration: IdempotencyConfiguration = .init()) throws {
        self.engine = try IdempotencyEngine(operations: operations, configuration: configuration)
        self.principal = principal
    }

    /// Applies the idempotency rules to one request (see the type's documentation).
    @concurrent
    public func handle(
        _ input: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        var request = input
        let limit = configuration.requestBodyByteCountLimit
        let responseLimit = configuration.responseBodyByteCountLimit
        var overflowed = false
        let outcome = try await engine.respond(
            to: input.head,
            principal: principal.resolve(input, context),
            body: {
                // A larger body is not read on (its 413 closes the connection).
                guard let buffer = try await request.body.collectEndingOverflow(upTo: limit) else {
                    overflowed = true
                    return nil
                }
                request.body = .init(buffer: buffer)
                return Array(buffer.readableBytesView)
            },
            handler: { transaction in
                var context = context
                context.idempotency.transaction = transaction
                var response: Response
                var thrown = false
                do {
                    response = try await next(request, context)
                } catch let error as any HTTPResponseError {
                    // As ``ProblemMiddleware`` answers it on a route without this middleware.
                    response = HTTPProblem.response(for: error, from: request, context: context)
                    thrown = true
                }
                let collector = BodyCollector(limit: responseLimit)
                do {
                    try await response.body.write(CollectingWriter(collector: collector))
                } catch is TooLarge {
                    throw IdempotencyEngine<S>.ResponseTooLarge()
                }
                return .init(head: response.head, body: collector.bytes, thrown: thrown)
            }
        )
        switch outcome {
        case .passThrough:
            return try await next(request, context)
        case .respond(let response):
            var answer = Response(
                status: response.status,
                headers: response.headerFields,
                body: .init(byteBuffer: ByteBuffer(bytes: response.body))
            )
            if overflowed { answer.headers[.connection] = "close" }
            return answer
        }
    }
}

/// Collects a response body up to a limit. Used by one task only, sequentially.
private final class BodyCollector: @unchecked Sendable {
    let limit: Int
    var bytes: [UInt8] = []
    init(limit: Int) { self.limit = limit }
}

private struct CollectingWriter: ResponseBodyWriter {
    let collector: BodyCollector

    mutating func write(_ buffer: ByteBuffer) async throws {
        // Throw, not drop: a long or endless body must not keep the transaction open.
        guard collector.bytes.count + buffer.readableBytes <= collector.limit else { throw TooLarge() }
        collector.bytes.append(contentsOf: buffer.readableBytesView)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}

private struct TooLarge: Error {}
