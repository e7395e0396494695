public import Hummingbird
public import Unrace
import UnraceHTTP
import Foundation
import NIOCore

/// Makes `POST` (and `PATCH`) routes idempotent per draft-ietf-httpapi-idempotency-key-header.
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
///   `idempotency_key_reused`.
///
/// Keys are scoped per ``Principal``. A handler commits its writes by *returning* a response;
/// an HTTP error it *throws* (`HTTPError`, ``UnraceHTTP/HTTPProblem``) rolls its writes back and
/// is stored on its own when its status is stored. Responses the configuration does not store
/// (5xx by default), and handler errors that are not HTTP errors, commit nothing and free the
/// key for a retry. Stored and replayed responses carry `Idempotency-Key-Retention`: the seconds
/// a completed key stays stored. Input the middleware itself refuses (key, principal, body size)
/// is a 4xx `application/problem+json`, never reaches the handler and stores nothing; a 4xx the
/// handler returns or throws is a terminal answer and is stored like any other.
///
/// The handler runs inside a store step. On PostgreSQL a step that meets a serialization
/// failure or deadlock is retried whole, so a handler may run again after its earlier attempt
/// rolled back: keep external effects out of it (call other services the two-phase way, as the
/// shop's capture does).
public struct IdempotencyMiddleware<S: Store, Context: IdempotentRequestContext>: RouterMiddleware
where Context.Transaction == S.Transaction {
    /// The operations the keys are recorded with (its store, lease and retention).
    public let operations: Operations<S>
    /// The middleware's settings.
    public let configuration: IdempotencyConfiguration
    /// Whose keys these are.
    public let principal: Principal<Context>

    /// - Throws: ``UnraceError/Code/invalidConfiguration`` when a limit is out of range.
    public init(operations: Operations<S>, principal: Principal<Context>, configuration: IdempotencyConfiguration = .init()) throws {
        self.operations = operations
        self.principal = principal
        self.configuration = try configuration.validated()
    }

    /// Applies the idempotency rules to one request (see the type's documentation).
    @concurrent
    public func handle(_ input: Request, context: Context, next: @concurrent (Request, Context) async throws -> Response) async throws -> Response {
        guard configuration.methods.contains(input.method) else { return try await next(input, context) }
        let values = input.headers[values: .idempotencyKey]
        guard let header = values.first else {
            if !configuration.requiresKey { return try await next(input, context) }
            return problem(HTTPProblem(.idempotencyKeyMissing, detail: "send an Idempotency-Key header with this request"))
        }
        let key: IdempotencyKey
        do {
            guard values.count == 1 else { throw HTTPProblem(.idempotencyKeyInvalid, detail: "send one Idempotency-Key header, not several") }
            key = try IdempotencyKey(parsing: header, syntax: configuration.keySyntax)
            _ = try OperationKey(key.value)
        } catch let error as HTTPProblem {
            return problem(error)
        } catch {
            return problem(HTTPProblem(.idempotencyKeyInvalid, detail: "the key is not a valid operation key"))
        }
        guard let name = principal.resolve(input, context), let scope = Principal<Context>.scope(for: name) else {
            return problem(HTTPProblem(.principalInvalid, detail: "the request names no usable client identity"))
        }
        var request = input
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.requestBodyByteCountLimit)
        } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
            return problem(HTTPProblem(.bodyTooLarge, detail: "the body is larger than \(configuration.requestBodyByteCountLimit) bytes"))
        }
        let fingerprint = configuration.fingerprint.fingerprint(of: request.head, body: body.readableBytesView)
        do {
            switch configuration.whileInProgress.mode {
            case .wait(let timeout):
                return try await waitingRun(request, context, key, scope, fingerprint, timeout, next)
            case .conflict:
                return try await claimingRun(request, context, key, scope, fingerprint, next)
            }
        } catch let unstored as Unstored {
            return unstored.response
        } catch let error as UnraceError {
            switch error.code {
            case .fingerprintMismatch:
                return problem(HTTPProblem(.idempotencyKeyReused, detail: "this key was used with a different request"))
            case .inProgress, .waitTimedOut:
                return problem(HTTPProblem(.requestInProgress, detail: "a request with this key is still being processed"), retryAfter: true)
            case .unknownScope, .invalidScope:
                return problem(HTTPProblem(.principalInvalid, detail: "this client may not use idempotency keys here"))
            default:
                // The database failing over, unreachable or read-only: nothing was stored (or, for
                // outcome_unknown, a retry replays what was): 503 with Retry-After.
                if error.isRetryable { return problem(HTTPProblem.unhandled(error)) }
                throw error
            }
        }
    }

    /// ``WhileInProgress/wait(upTo:)``: one transaction claims, runs the handler and stores the response.
    private func waitingRun(
        _ request: Request, _ context: Context, _ key: IdempotencyKey, _ scope: Scope, _ fingerprint: Fingerprint,
        _ timeout: Duration, _ next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        let policy = InProgressPolicy.wait(upTo: timeout)
        let original = OriginalHead()
        do {
            let receipt = try await operations.perform(key: key.value, scope: scope, fingerprint: fingerprint, whenInProgress: policy) { transaction in
                try await run(request, context, transaction, next, original)
            }
            return response(receipt.value, replayed: receipt.isReplay, original: receipt.isReplay ? nil : original.fields)
        } catch let thrown as ThrownResponse {
            // The handler's writes rolled back; store its error response on its own (or replay
            // whatever a retry stored in between).
            let receipt = try await operations.perform(key: key.value, scope: scope, fingerprint: fingerprint, whenInProgress: policy) { _ in
                thrown.stored
            }
            return response(receipt.value, replayed: receipt.isReplay, original: receipt.isReplay ? nil : thrown.fields)
        }
    }

    /// ``WhileInProgress/conflict``: a committed claim first, so retries see it and get 409.
    private func claimingRun(
        _ request: Request, _ context: Context, _ key: IdempotencyKey, _ scope: Scope, _ fingerprint: Fingerprint,
        _ next: @concurrent (Request, Context) async throws -> Response
    ) async throws -> Response {
        // A read first, which waits for no lock: while the first request's handler runs, its
        // transaction holds the claim's row lock (PostgreSQL) or the writer (SQLite), and `begin`
        // would wait for it instead of answering 409. Whether the lease is live is the store's
        // decision, on its clock (the database's on PostgreSQL), never this process's: a claim
        // whose lease has ended (its holder crashed) is left to `begin`, which takes it over.
        switch try await operations.peek(key: key.value, scope: scope, fingerprint: fingerprint) {
        case .inProgress: throw UnraceError(.inProgress, "a request with this key is in progress")
        case .fingerprintMismatch: throw UnraceError(.fingerprintMismatch, "this key was used with a different request")
        case .insert, .takeOver, .completed: break
        }
        switch try await operations.begin(key: key.value, scope: scope, fingerprint: fingerprint) {
        case .acquired(let handle):
            do {
                do {
                    let original = OriginalHead()
                    let stored = try await operations.complete(handle, producing: { transaction in
                        try await run(request, context, transaction, next, original)
                    })
                    return response(stored, replayed: false, original: original.fields)
                } catch let thrown as ThrownResponse {
                    // The handler's writes rolled back; the key is still ours: store the error response.
                    try await operations.complete(handle, result: thrown.stored)
                    return response(thrown.stored, replayed: false, original: thrown.fields)
                }
            } catch {
                // Free the key for a retry, also when this request was cancelled (a detached task
                // is not); if this fails too, the lease's end frees it.
                let operations = operations
                await Task.detached { try? await operations.fail(handle, reason: .retryable) }.value
                throw error
            }
        case .completed(let completed):
            return response(try completed.value(as: StoredResponse.self), replayed: true)
        case .inProgress:
            throw UnraceError(.inProgress, "a request with this key is in progress")
        case .fingerprintMismatch:
            throw UnraceError(.fingerprintMismatch, "this key was used with a different request")
        }
    }

    /// Runs the handler in `transaction` and captures its response. A response that must not
    /// be stored is thrown as ``Unstored``, and an HTTP error the handler threw as
    /// ``ThrownResponse``: both roll the handler's writes back.
    private func run(
        _ request: Request, _ context: Context, _ transaction: S.Transaction, _ next: @concurrent (Request, Context) async throws -> Response,
        _ original: OriginalHead
    ) async throws -> StoredResponse {
        var context = context
        context.idempotency.transaction = transaction
        var response: Response
        var thrown = false
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
            thrown = true
        }
        let head = response.head
        let collector = BodyCollector(limit: configuration.responseBodyByteCountLimit)
        do {
            try await response.body.write(CollectingWriter(collector: collector))
        } catch is ResponseTooLarge {
            throw Unstored(response: problem(HTTPProblem(.internalError, detail: "the response was too large to store; nothing was saved")))
        }
        original.fields = head.headerFields
        let stored = StoredResponse(head, body: collector.data)
        guard configuration.storedStatuses.contains(head.status) else {
            throw Unstored(response: Response(status: head.status, headers: head.headerFields, body: .init(byteBuffer: ByteBuffer(bytes: collector.data))))
        }
        if thrown { throw ThrownResponse(stored: stored, fields: head.headerFields) }
        return stored
    }

    /// The response to send: the stored one (marked when replayed), or on the first request the
    /// handler's own header fields (`Set-Cookie` too) with the stored body.
    private func response(_ stored: StoredResponse, replayed: Bool, original: HTTPFields? = nil) -> Response {
        var headers = original ?? stored.head.headerFields
        headers[.contentLength] = nil
        if replayed { headers[.idempotentReplayed] = "true" }
        headers[.idempotencyKeyRetention] = String(operations.configuration.retention.components.seconds)
        return Response(status: .init(code: stored.status), headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: stored.body)))
    }

    private func problem(_ problem: HTTPProblem, retryAfter: Bool = false) -> Response {
        problem.response()  // with Retry-After for the problems that ask for a retry
    }
}

/// A response that is given to the client but not stored; thrown to roll the step back.
private struct Unstored: Error, @unchecked Sendable {
    // `Response` holds a `@Sendable` body closure; the error only travels back up the same task.
    let response: Response
}

/// An HTTP error the handler threw, captured for storing after its writes rolled back.
private struct ThrownResponse: Error {
    let stored: StoredResponse
    let fields: HTTPFields
}

/// The first response's own header fields, kept beside the stored copy (which leaves some out).
/// Written once by the handler's step and read after it, in the same task.
private final class OriginalHead: @unchecked Sendable {
    var fields: HTTPFields?
}

/// A response body over the configured limit.
private struct ResponseTooLarge: Error {}

/// Collects a response body up to a limit. Used by one task only, sequentially.
private final class BodyCollector: @unchecked Sendable {
    let limit: Int
    var data = Data()
    init(limit: Int) { self.limit = limit }
}

private struct CollectingWriter: ResponseBodyWriter {
    let collector: BodyCollector

    mutating func write(_ buffer: ByteBuffer) async throws {
        // Throw, not drop: a long or endless body must not keep the transaction open.
        guard collector.data.count + buffer.readableBytes <= collector.limit else { throw ResponseTooLarge() }
        collector.data.append(contentsOf: buffer.readableBytesView)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
