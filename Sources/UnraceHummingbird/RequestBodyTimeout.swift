public import Hummingbird
import NIOCore
import Unrace
import UnraceHTTP

/// Bounds how long a request's body may take to arrive: a client that sends its headers and
/// part of a body, then stops or trickles (a slow-loris), gets 408 `request_timeout` once
/// `timeout` has passed since the handler chain began, and its connection is closed — it never
/// holds a handler, a database transaction or a graceful shutdown. The body is read here, up to
/// `byteCountLimit` (a larger one is 413 `body_too_large`), and handed on buffered.
///
/// The server's idle timeout (`HTTP1Channel.Configuration.idleTimeout`) closes a connection on
/// which nothing arrives at all; this bounds the whole body, however slowly it trickles. A body
/// over the limit is not read on: the connection closes after the 413.
public struct RequestBodyTimeout<Context: RequestContext>: RouterMiddleware {
    /// The longest a body may take: 1 ms to 10 minutes.
    public let timeout: Duration
    /// The largest body read, in bytes (0 to 16 MiB).
    public let byteCountLimit: Int

    /// - Throws: ``UnraceCore/UnraceError/Code/invalidConfiguration`` for a timeout outside 1 ms…10 min
    ///   or a limit outside 0…16 MiB.
    public init(timeout: Duration, byteCountLimit: Int = 1 << 20) throws {
        guard timeout >= .milliseconds(1), timeout <= .seconds(600), (0...(16 << 20)).contains(byteCountLimit) else {
            throw UnraceError(.invalidConfiguration, "a body timeout is 1 ms to 10 minutes and its limit 0 to 16 MiB")
        }
        self.timeout = timeout
        self.byteCountLimit = byteCountLimit
    }

    /// Reads the body within the timeout, then runs the rest of the chain with it buffered.
    @concurrent
    public func handle(
        _ input: Request,
        context: Context,
        next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        // Requests that say they have no body skip the race.
        if input.headers[.contentLength] == "0" || (input.headers[.contentLength] == nil && input.headers[.transferEncoding] == nil) {
            return try await next(input, context)
        }
        let body = input.body
        let limit = byteCountLimit
        let timeout = timeout
        let collected: Result<ByteBuffer?, any Error>? = await withTaskGroup(of: Result<ByteBuffer?, any Error>?.self) { group in
            group.addTask {
                do { return .success(try await body.collectEndingOverflow(upTo: limit)) } catch { return .failure(error) }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        switch collected {
        case nil:
            var response = HTTPProblem(.requestTimeout, detail: "the request body did not arrive within \(timeout)").response()
            response.headers[.connection] = "close"
            return response
        case .success(nil):
            var response = HTTPProblem(.bodyTooLarge, detail: "the body is larger than \(limit) bytes").response()
            response.headers[.connection] = "close"
            return response
        case .failure(let error):
            throw error
        case .success(let buffer?):
            var request = input
            request.body = .init(buffer: buffer)
            return try await next(request, context)
        }
    }
}

extension RequestBody {
    /// The body, up to `limit` bytes, or `nil` when it is larger. The rest of a larger body is
    /// not read: the request's stream is ended (a read of it cancelled), so the server closes
    /// the connection once the answer is written, instead of reading an upload of any size and
    /// pace to its end to find the next request (Hummingbird ignores a response's
    /// `Connection: close`).
    func collectEndingOverflow(upTo limit: Int) async throws -> ByteBuffer? {
        try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            // A task of its own: the read that ends the stream cancels the task it runs in.
            group.addTask {
                var buffer = ByteBuffer()
                var iterator = self.makeAsyncIterator()
                while var part = try await iterator.next() {
                    guard part.readableBytes <= limit - buffer.readableBytes else {
                        withUnsafeCurrentTask { $0?.cancel() }
                        _ = try? await iterator.next()
                        return nil
                    }
                    buffer.writeBuffer(&part)
                }
                return buffer
            }
            return try await group.next() ?? nil
        }
    }
}
