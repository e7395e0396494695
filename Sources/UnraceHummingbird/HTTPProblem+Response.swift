public import Hummingbird
public import UnraceHTTP
import NIOCore

extension HTTPProblem: ResponseGenerator, HTTPResponseError {
    /// The problem as an `application/problem+json` response. Handlers can `throw` a problem.
    public func response(from request: Request, context: some RequestContext) throws -> Response { response() }

    /// The problem as an `application/problem+json` response.
    public func response() -> Response {
        Response(
            status: status,
            headers: [.contentType: HTTPProblem.mediaType],
            body: .init(byteBuffer: ByteBuffer(bytes: jsonBody()))
        )
    }
}
