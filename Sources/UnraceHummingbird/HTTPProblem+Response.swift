public import Hummingbird
import NIOCore
public import UnraceHTTP

extension HTTPProblem: ResponseGenerator, HTTPResponseError {
    /// The problem as an `application/problem+json` response. Handlers can `throw` a problem.
    public func response(from request: Request, context: some RequestContext) throws -> Response { response() }

    /// The problem as an `application/problem+json` response (with `Retry-After` when the
    /// problem asks the client to retry later).
    public func response() -> Response {
        var headers: HTTPFields = [.contentType: HTTPProblem.mediaType]
        if let seconds = retryAfterSeconds { headers[.retryAfter] = String(seconds) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: jsonBody())))
    }
}
