import HTTPTypes
public import Unrace
public import UnraceHTTP
public import Vapor

/// Makes `POST` (and `PATCH`) routes idempotent per draft-ietf-httpapi-idempotency-key-header:
/// the Vapor adapter of ``UnraceHTTP/IdempotencyEngine``, with exactly the contract of the
/// Hummingbird middleware — every rule is the engine's.
///
/// - no `Idempotency-Key` → 400 `idempotency_key_missing` (unless keys are optional); a malformed,
///   repeated or over-long key → 400 `idempotency_key_invalid`;
/// - the first request with a key runs the route, whose writes go through `req.unrace.db` (the
///   claim's transaction, on a ``UnraceFluent/FluentStore``) and commit with the stored response;
/// - a retry after completion gets the stored status, headers and body with
///   `Idempotent-Replayed: true`, without running the route;
/// - a retry while the first runs waits and replays, or gets 409 with `Retry-After`;
/// - the same key with a different request → 422 `idempotency_key_reused`; a body over the limit
///   → 413; a principal that is missing or unusable → 400; a store failing over → 503.
///
/// A route commits its writes by *returning* a response; an error it *throws* (`Abort`,
/// ``UnraceHTTP/HTTPProblem``) rolls them back and, when its status is stored, is stored on its
/// own. Responses not stored (5xx by default) and errors that are not HTTP errors commit nothing
/// and free the key.
public struct IdempotencyMiddleware<S: Store>: AsyncMiddleware {
    /// The rules, shared with every other framework's adapter.
    public let engine: IdempotencyEngine<S>
    let principal: @Sendable (Request) -> String?

    /// - Parameters:
    ///   - operations: the operations keys are recorded with (their store: a ``UnraceFluent/FluentStore``
    ///     for Fluent routes).
    ///   - principal: whose keys these are (a header, the authenticated user); `nil` refuses the
    ///     request with 400 `principal_invalid`. Keys are scoped per principal
    ///     (``UnraceHTTP/PrincipalScope``). There is no default: a default of one principal for
    ///     every request would let one client's key replay another's response. A single-tenant
    ///     service says so with `{ _ in "everyone" }`.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidConfiguration`` when a limit is out of range.
    public init(
        operations: Operations<S>,
        configuration: IdempotencyConfiguration = .init(),
        principal: @escaping @Sendable (Request) -> String?
    ) throws {
        self.engine = try IdempotencyEngine(operations: operations, configuration: configuration)
        self.principal = principal
    }

    /// Refused at compile time: say whose keys these are (`principal:`), or `{ _ in "everyone" }`
    /// for a single-tenant service. A default of one principal for every request would let one
    /// client's key replay another's response.
    @available(*, unavailable, message: "pass principal: (whose keys these are), or { _ in \"everyone\" } for a single-tenant service")
    public init(operations: Operations<S>, configuration: IdempotencyConfiguration = .init()) throws {
        fatalError("unavailable")
    }

    /// A middleware whose principal is a request header (for example an API-key id a gateway
    /// sets). A request without it, or with it more than once, is refused with 400
    /// `principal_invalid`: of two values, one may be the client's own, sent ahead of the one a
    /// gateway appended.
    /// - Throws: ``UnraceCore/UnraceError/Code/invalidConfiguration`` when a limit is out of range.
    public init(operations: Operations<S>, configuration: IdempotencyConfiguration = .init(), principalHeader name: String) throws {
        try self.init(operations: operations, configuration: configuration) { PrincipalScope.headerValue($0.headers[name]) }
    }

    /// Applies the rules to one request.
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let configuration = engine.configuration
        // The route never collects a body this middleware collected, so the application's own
        // limit (`app.routes.defaultMaxBodySize`, Vapor's 16 KB unless raised) holds here too.
        let limit = min(configuration.requestBodyByteCountLimit, max(request.application.routes.defaultMaxBodySize.value, 0))
        let outcome = try await engine.respond(
            to: HTTPConversions.head(request),
            principal: principal(request),
            bodyLimit: limit,
            body: {
                do {
                    // Vapor refuses a streamed body at `max` bytes, not past it: one more byte, so
                    // a body of exactly the limit is taken however it arrives (the limit is at
                    // most `bodyByteCountMaximum`, so this cannot overflow).
                    let buffer = try await request.body.collect(max: limit + 1).get()
                    // Vapor hands over a body that came in one read with its head as collected
                    // already, without checking `max`: check it here.
                    guard (buffer?.readableBytes ?? 0) <= limit else { return nil }
                    return buffer.map { Array($0.readableBytesView) } ?? []
                } catch let error as any AbortError where error.status == .payloadTooLarge {
                    return nil
                }
            },
            handler: { transaction in
                request.unrace.transaction = transaction
                defer { request.unrace.transaction = nil }
                var response: Response
                var thrown = false
                do {
                    response = try await next.respond(to: request)
                } catch let problem as HTTPProblem {
                    response = problem.vaporResponse()
                    thrown = true
                } catch let error as any AbortError {
                    // As ``ProblemMiddleware`` answers it on a route without this middleware,
                    // headers (a redirect's Location, WWW-Authenticate) included.
                    response = HTTPProblem.vaporResponse(for: error)
                    thrown = true
                }
                let limit = configuration.responseBodyByteCountLimit
                // A body of a known size over the limit is refused unread. Vapor offers no bounded
                // read of a stream of unknown size: it is read whole, then measured.
                guard response.body.count <= limit else { throw IdempotencyEngine<S>.ResponseTooLarge() }
                guard
                    let body = try await response.body.collect(on: request.eventLoop).get().map({ Array($0.readableBytesView) }) ?? []
                        as [UInt8]?,
                    body.count <= limit
                else {
                    throw IdempotencyEngine<S>.ResponseTooLarge()
                }
                return .init(
                    head: HTTPResponse(
                        status: HTTPConversions.status(response.status),
                        headerFields: HTTPConversions.fields(response.headers)
                    ),
                    body: body,
                    thrown: thrown
                )
            }
        )
        switch outcome {
        case .passThrough:
            return try await next.respond(to: request)
        case .respond(let response):
            return Response(
                status: HTTPConversions.status(response.status),
                headers: HTTPConversions.headers(response.headerFields),
                body: .init(data: Data(response.body))
            )
        }
    }
}
