public import UnraceHTTP
public import Vapor

extension HTTPProblem {
    /// The problem as a Vapor `application/problem+json` response, with `Retry-After` when it
    /// asks for a retry. Routes can `throw` a problem: ``ProblemMiddleware`` (and
    /// ``IdempotencyMiddleware``) render it.
    public func vaporResponse() -> Response {
        // A status that carries no body (1xx, 204, 304) gets neither body nor content type.
        guard hasBody else { return Response(status: HTTPConversions.status(status)) }
        var headers = HTTPHeaders([("Content-Type", HTTPProblem.mediaType)])
        if let seconds = retryAfterSeconds { headers.add(name: "Retry-After", value: String(seconds)) }
        return Response(status: HTTPConversions.status(status), headers: headers, body: .init(data: jsonBody()))
    }

    /// A Vapor error (`Abort`, a 404 for an unknown route) as a problem: its status and headers
    /// (`Location`, `WWW-Authenticate`), with a problem body. ``ProblemMiddleware`` and
    /// ``IdempotencyMiddleware`` answer it alike.
    static func vaporResponse(for error: any AbortError) -> Response {
        let response = HTTPProblem(status: HTTPConversions.status(error.status)).vaporResponse()
        let fields = error.headers.filter { $0.name.lowercased() != "content-type" && $0.name.lowercased() != "content-length" }
        // The error's own value of a field the problem also sets (a 503's `Retry-After`) replaces
        // it: a second `Retry-After` line would make the field invalid.
        for name in Set(fields.map { $0.name.lowercased() }) { response.headers.remove(name: name) }
        for (name, value) in fields { response.headers.add(name: name, value: value) }
        return response
    }
}

/// Answers every error with an RFC 9457 `application/problem+json` body — Vapor's own (a 404 for
/// an unknown route, `Abort`), ``UnraceHTTP/HTTPProblem``s, and errors no route caught: a
/// retryable store condition (failing over, read-only, unreachable) is 503 `service_unavailable`
/// with `Retry-After: 1`, anything else 500 `internal_error`, logged by type (never its text,
/// which may name keys). Use it instead of Vapor's `ErrorMiddleware`, first:
/// `app.middleware = .init(); app.middleware.use(ProblemMiddleware())`.
public struct ProblemMiddleware: AsyncMiddleware {
    /// A problem middleware.
    public init() {}

    /// Runs the rest of the chain and turns what it throws into a problem response.
    public func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch let problem as HTTPProblem {
            return problem.vaporResponse()
        } catch let error as any AbortError {
            return HTTPProblem.vaporResponse(for: error)
        } catch {
            let problem = HTTPProblem.unhandled(error)
            request.logger.error("request failed", metadata: ["error": "\(type(of: error))", "status": "\(problem.status.code)"])
            return problem.vaporResponse()
        }
    }
}
