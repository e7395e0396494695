public import Hummingbird
public import Logging
import UnraceHTTP

/// Answers every error with an RFC 9457 `application/problem+json` body, as an API that
/// documents problems for all its errors must: the router's own (an unknown route is 404
/// `not_found`, a parameter it could not parse 400 `bad_request`), `HTTPError`s, and errors no
/// handler caught — a retryable store condition (unreachable, failing over, read-only) is 503
/// `service_unavailable` with `Retry-After: 1`, anything else 500 `internal_error`, logged with
/// its type only (never its text, which may name keys).
///
/// Add it first (outermost), so it also sees what other middleware throws.
public struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let logger: Logger?

    /// - Parameter logger: where unhandled errors are logged (at error level, by type and code).
    public init(logger: Logger? = nil) { self.logger = logger }

    /// Runs the rest of the chain and turns what it throws into a problem response.
    @concurrent
    public func handle(
        _ input: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(input, context)
        } catch let problem as HTTPProblem {
            return problem.response()
        } catch let error as any HTTPResponseError {
            return HTTPProblem.response(for: error, from: input, context: context)
        } catch {
            let problem = HTTPProblem.unhandled(error)
            logger?.error("request failed", metadata: ["error": "\(type(of: error))", "status": "\(problem.status.code)"])
            return problem.response()
        }
    }
}
