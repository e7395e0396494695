public import Hummingbird
import NIOCore
public import UnraceHTTP

extension HTTPProblem: ResponseGenerator, HTTPResponseError {
    /// The problem as an `application/problem+json` response. Handlers can `throw` a problem.
    public func response(from request: Request, context: some RequestContext) throws -> Response { response() }

    /// The problem as an `application/problem+json` response (with `Retry-After` when the
    /// problem asks the client to retry later); a status that carries no body (1xx, 204, 304)
    /// gets neither body nor content type.
    public func response() -> Response {
        guard hasBody else { return Response(status: status) }
        var headers: HTTPFields = [.contentType: HTTPProblem.mediaType]
        if let seconds = retryAfterSeconds { headers[.retryAfter] = String(seconds) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: jsonBody())))
    }

    /// A framework error (`HTTPError`, the router's own) as a problem: its status and headers
    /// (`Allow`, `WWW-Authenticate`), with a problem body. ``ProblemMiddleware`` and
    /// ``IdempotencyMiddleware`` answer it alike; an ``HTTPProblem`` is its own response.
    static func response(for error: any HTTPResponseError, from request: Request, context: some RequestContext) -> Response {
        if let problem = error as? HTTPProblem { return problem.response() }
        var response = HTTPProblem(status: error.status).response()
        let own = (try? error.response(from: request, context: context))?.headers ?? [:]
        let fields = own.filter { $0.name != .contentType && $0.name != .contentLength }
        // The error's own value of a field the problem also sets (a 503's `Retry-After`) replaces
        // it: a second `Retry-After` line would make the field invalid.
        for name in Set(fields.map(\.name)) { response.headers[name] = nil }
        response.headers.append(contentsOf: fields)
        return response
    }
}
